"""The five functions as Lambda runs them: scripts/lambda-e2e.sh's driver (read its header).

    python lambda_e2e.py --build-dir DIR --template EXPANDED.json --rie PATH --endpoint URL

Runs with the test environment's moto virtualenv (boto3). Everything the functions get
comes from the SAM-expanded template: the resources their environment names are created
on moto (one fresh stage per run) and every intrinsic is resolved to those resources'
physical names, ARNs and URLs; the fixed schedules, the RDS event source mapping and the
API's URL come from it too. Each built `bootstrap` is started under the AWS Lambda Runtime
Interface Emulator with exactly that environment plus what Lambda itself sets, and is
invoked with the events its triggers send. Every check is an assertion on what came back
or on what is then in moto; the first failure stops the run with its cause (secrets
redacted) and the functions' last log lines.
"""

import argparse
import base64
import datetime
import hashlib
import io
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
import zipfile

import boto3

REGION = os.environ.get("AWS_REGION") or "us-east-1"
# moto's default account: the one dummy credentials act in.
ACCOUNT = "123456789012"
PARTITION = "aws"
STACK = "arca-lambda-e2e"
# Lambda's reserved variables: a template may not set these (Lambda refuses the function).
RESERVED = {
    "_HANDLER", "_X_AMZN_TRACE_ID", "AWS_DEFAULT_REGION", "AWS_REGION", "AWS_EXECUTION_ENV",
    "AWS_LAMBDA_FUNCTION_NAME", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "AWS_LAMBDA_FUNCTION_VERSION",
    "AWS_LAMBDA_INITIALIZATION_TYPE", "AWS_LAMBDA_LOG_GROUP_NAME", "AWS_LAMBDA_LOG_STREAM_NAME",
    "AWS_ACCESS_KEY", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
    "AWS_LAMBDA_RUNTIME_API", "LAMBDA_TASK_ROOT", "LAMBDA_RUNTIME_DIR",
}
TERMINAL = {"COMPLETED", "PARTIALLY_COMPLETED", "FAILED", "CANCELED", "SKIPPED"}


class Failed(Exception):
    pass


def log(msg):
    print(f"lambda-e2e: {redact(msg)}", flush=True)


SECRET_PATTERNS = [
    re.compile(r"arca[a-z]*_[A-Za-z0-9_\-]{8,}"),  # API keys, agent tokens, install links
    re.compile(r"\b[0-9a-fA-F]{64}\b"),  # the archive master key and other hex secrets
]


def redact(text):
    text = str(text)
    for p in SECRET_PATTERNS:
        text = p.sub("<redacted>", text)
    return text


def check(cond, what):
    if not cond:
        raise Failed(redact(what))


def eq(actual, expected, what):
    check(actual == expected, f"{what}: expected {expected!r}, got {actual!r}")


# ------------------------------------------------------------------ the template on moto


class Stack:
    """The expanded template's resources, created on moto when something refers to them."""

    def __init__(self, template, parameters, build_dir, session):
        self.t = template
        self.resources = template["Resources"]
        self.build_dir = build_dir
        self.s = session
        self.params = {}
        for name, spec in template.get("Parameters", {}).items():
            value = parameters.get(name, spec.get("Default"))
            check(value is not None, f"parameter {name} has no default and the test gives none")
            value = str(value)
            if "AllowedValues" in spec:
                check(value in [str(v) for v in spec["AllowedValues"]], f"parameter {name}: {value!r} not allowed")
            if "AllowedPattern" in spec:
                check(re.fullmatch(spec["AllowedPattern"], value), f"parameter {name}: {value!r} does not match")
            self.params[name] = value
        unknown = set(parameters) - set(self.params)
        check(not unknown, f"the template has no parameter {sorted(unknown)}")
        self.created = {}  # logical id -> {"Ref": ..., attributes...}
        self.creating = set()
        self.suffix = secrets.token_hex(4).upper()

    def client(self, service):
        return self.s.client(service, region_name=REGION)

    # ---- intrinsics
    def condition(self, name):
        return bool(self.resolve(self.t["Conditions"][name]))

    def resolve(self, v):
        if isinstance(v, list):
            out = [self.resolve(x) for x in v]
            return [x for x in out if x is not NoValue]
        if not isinstance(v, dict):
            return v
        if len(v) == 1:
            (k, a), = v.items()
            if k == "Ref":
                return self.ref(a)
            if k == "Fn::GetAtt":
                name, attr = a if isinstance(a, list) else a.split(".", 1)
                return self.getatt(name, self.resolve(attr))
            if k == "Fn::Sub":
                return self.sub(a)
            if k == "Fn::If":
                cond, yes, no = a
                return self.resolve(yes if self.condition(cond) else no)
            if k == "Fn::Equals":
                x, y = (self.resolve(x) for x in a)
                return str(x) == str(y)
            if k == "Fn::Not":
                return not self.resolve(a[0])
            if k == "Fn::And":
                return all(self.resolve(x) for x in a)
            if k == "Fn::Or":
                return any(self.resolve(x) for x in a)
            if k == "Condition":
                return self.condition(a)
            if k == "Fn::FindInMap":
                m, top, second = (self.resolve(x) for x in a)
                return self.t["Mappings"][m][top][second]
            if k == "Fn::Join":
                sep, items = a
                return sep.join(str(x) for x in self.resolve(items))
            if k == "Fn::Split":
                sep, s = a
                return self.resolve(s).split(sep)
            if k == "Fn::Select":
                i, items = a
                return self.resolve(items)[int(self.resolve(i))]
            if k.startswith("Fn::"):
                raise Failed(f"lambda-e2e cannot resolve {k} yet: add it to Stack.resolve")
        out = {}
        for key, x in v.items():
            r = self.resolve(x)
            if r is not NoValue:
                out[key] = r
        return out

    def sub(self, a):
        text, variables = (a, {}) if isinstance(a, str) else (a[0], a[1])
        variables = {k: self.resolve(x) for k, x in variables.items()}

        def one(m):
            name = m.group(1)
            if name.startswith("!"):
                return "${" + name[1:] + "}"
            if name in variables:
                return str(variables[name])
            if "." in name:
                res, attr = name.split(".", 1)
                return str(self.getatt(res, attr))
            return str(self.ref(name))

        return re.sub(r"\$\{([^}]+)\}", one, text)

    def ref(self, name):
        pseudo = {
            "AWS::Region": REGION, "AWS::AccountId": ACCOUNT, "AWS::Partition": PARTITION,
            "AWS::URLSuffix": "amazonaws.com", "AWS::StackName": STACK, "AWS::NoValue": NoValue,
            "AWS::StackId": f"arn:{PARTITION}:cloudformation:{REGION}:{ACCOUNT}:stack/{STACK}/{uuid.uuid4()}",
        }
        if name in pseudo:
            return pseudo[name]
        if name in self.params:
            return self.params[name]
        return self.create(name)["Ref"]

    def getatt(self, name, attr):
        made = self.create(name)
        check(attr in made, f"lambda-e2e has no {name}.{attr} for a {self.resources[name]['Type']}: add it")
        return made[attr]

    # ---- resources
    def physical(self, logical, lower=False, limit=64):
        """A CloudFormation-like generated name: <stack>-<logical id>-<random>."""
        name = f"{STACK}-{logical[: limit - len(STACK) - 11]}-{self.suffix}"
        return name.lower() if lower else name

    def create(self, logical):
        if logical in self.created:
            return self.created[logical]
        check(logical in self.resources, f"the template refers to {logical}, which it does not define")
        check(logical not in self.creating, f"{logical} refers to itself")
        self.creating.add(logical)
        r = self.resources[logical]
        if "Condition" in r:
            check(self.condition(r["Condition"]), f"{logical} is referred to but its condition is false")
        kind = r["Type"]
        maker = MAKERS.get(kind)
        check(maker is not None, f"lambda-e2e does not create {kind} ({logical}) on moto yet: add a maker")
        props = r.get("Properties", {})
        made = maker(self, logical, props)
        self.created[logical] = made
        self.creating.discard(logical)
        return made


class _NoValue:
    def __repr__(self):
        return "AWS::NoValue"


NoValue = _NoValue()


def make_kms_key(st, logical, p):
    key = st.client("kms").create_key(Description=st.resolve(p.get("Description", logical)))["KeyMetadata"]
    return {"Ref": key["KeyId"], "Arn": key["Arn"], "KeyId": key["KeyId"]}


def make_secret(st, logical, p):
    # What GenerateSecretString makes: a random text (here URL-safe base64 of 48 bytes).
    check("GenerateSecretString" in p, f"{logical}: only generated secrets are made")
    kwargs = {"Name": st.physical(logical), "SecretString": secrets.token_urlsafe(48)}
    if p.get("KmsKeyId"):
        kwargs["KmsKeyId"] = st.resolve(p["KmsKeyId"])
    arn = st.client("secretsmanager").create_secret(**kwargs)["ARN"]
    return {"Ref": arn, "Id": arn}


def make_table(st, logical, p):
    name = st.resolve(p.get("TableName")) or st.physical(logical)
    args = {k: st.resolve(p[k]) for k in ("AttributeDefinitions", "KeySchema", "GlobalSecondaryIndexes", "BillingMode")
            if k in p}
    desc = st.client("dynamodb").create_table(TableName=name, **args)["TableDescription"]
    ttl = st.resolve(p.get("TimeToLiveSpecification"))
    if ttl:
        st.client("dynamodb").update_time_to_live(TableName=name, TimeToLiveSpecification=ttl)
    return {"Ref": name, "Arn": desc["TableArn"]}


def make_bucket(st, logical, p):
    name = st.resolve(p.get("BucketName")) or st.physical(logical, lower=True, limit=63)
    kwargs = {} if REGION == "us-east-1" else {"CreateBucketConfiguration": {"LocationConstraint": REGION}}
    st.client("s3").create_bucket(Bucket=name, **kwargs)
    return {"Ref": name, "Arn": f"arn:{PARTITION}:s3:::{name}", "DomainName": f"{name}.s3.amazonaws.com",
            "RegionalDomainName": f"{name}.s3.{REGION}.amazonaws.com"}


def make_role(st, logical, p):
    name = st.resolve(p.get("RoleName")) or st.physical(logical)
    role = st.client("iam").create_role(
        RoleName=name, AssumeRolePolicyDocument=json.dumps(st.resolve(p["AssumeRolePolicyDocument"])))["Role"]
    return {"Ref": name, "Arn": role["Arn"], "RoleId": role["RoleId"]}


def make_queue(st, logical, p):
    name = st.resolve(p.get("QueueName")) or st.physical(logical, limit=80)
    attrs = {}
    for k in ("VisibilityTimeout", "MessageRetentionPeriod", "DelaySeconds", "ReceiveMessageWaitTimeSeconds",
              "SqsManagedSseEnabled"):
        if k in p:
            v = st.resolve(p[k])
            attrs[k] = str(v).lower() if isinstance(v, bool) else str(v)
    if "RedrivePolicy" in p:
        attrs["RedrivePolicy"] = json.dumps(st.resolve(p["RedrivePolicy"]))
    sqs = st.client("sqs")
    url = sqs.create_queue(QueueName=name, Attributes=attrs)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return {"Ref": url, "Arn": arn, "QueueName": name, "QueueUrl": url}


def make_schedule_group(st, logical, p):
    name = st.resolve(p.get("Name")) or st.physical(logical)
    arn = st.client("scheduler").create_schedule_group(Name=name)["ScheduleGroupArn"]
    return {"Ref": name, "Arn": arn}


def make_schedule(st, logical, p):
    p = st.resolve(p)
    name = p.get("Name") or st.physical(logical)
    args = {k: p[k] for k in ("GroupName", "ScheduleExpression", "FlexibleTimeWindow", "Target", "State",
                              "ScheduleExpressionTimezone", "Description") if k in p}
    arn = st.client("scheduler").create_schedule(Name=name, **args)["ScheduleArn"]
    return {"Ref": name, "Arn": arn}


def make_topic(st, logical, p):
    name = st.resolve(p.get("TopicName")) or st.physical(logical, limit=256)
    arn = st.client("sns").create_topic(Name=name)["TopicArn"]
    return {"Ref": arn, "TopicArn": arn, "TopicName": name}


def make_repository(st, logical, p):
    name = st.resolve(p.get("RepositoryName")) or st.physical(logical, lower=True)
    repo = st.client("ecr").create_repository(repositoryName=name)["repository"]
    return {"Ref": name, "Arn": repo["repositoryArn"], "RepositoryUri": repo["repositoryUri"]}


def make_log_group(st, logical, p):
    name = st.resolve(p.get("LogGroupName")) or f"/aws/{st.physical(logical)}"
    st.client("logs").create_log_group(logGroupName=name)
    return {"Ref": name, "Arn": f"arn:{PARTITION}:logs:{REGION}:{ACCOUNT}:log-group:{name}:*"}


def make_http_api(st, logical, p):
    name = st.resolve(p.get("Name")) or st.physical(logical)
    api = st.client("apigatewayv2").create_api(Name=name, ProtocolType=st.resolve(p.get("ProtocolType", "HTTP")))
    return {"Ref": api["ApiId"], "ApiId": api["ApiId"], "ApiEndpoint": api.get("ApiEndpoint", "")}


def make_function(st, logical, p):
    """The function on moto, its code the zip `sam deploy` would upload of the built bootstrap."""
    name = st.resolve(p.get("FunctionName")) or st.physical(logical)
    code = io.BytesIO()
    with zipfile.ZipFile(code, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as z:
        z.write(os.path.join(st.build_dir, logical, "bootstrap"), "bootstrap")
    fn = st.client("lambda").create_function(
        FunctionName=name, Runtime=st.resolve(p["Runtime"]), Role=st.resolve(p["Role"]),
        Handler=st.resolve(p["Handler"]), Code={"ZipFile": code.getvalue()},
        Timeout=int(st.resolve(p.get("Timeout", 3))), MemorySize=int(st.resolve(p.get("MemorySize", 128))),
        Architectures=st.resolve(p.get("Architectures", ["x86_64"])))
    return {"Ref": name, "Arn": fn["FunctionArn"]}


MAKERS = {
    "AWS::KMS::Key": make_kms_key,
    "AWS::SecretsManager::Secret": make_secret,
    "AWS::DynamoDB::Table": make_table,
    "AWS::S3::Bucket": make_bucket,
    "AWS::IAM::Role": make_role,
    "AWS::SQS::Queue": make_queue,
    "AWS::Scheduler::ScheduleGroup": make_schedule_group,
    "AWS::Scheduler::Schedule": make_schedule,
    "AWS::SNS::Topic": make_topic,
    "AWS::ECR::Repository": make_repository,
    "AWS::Logs::LogGroup": make_log_group,
    "AWS::ApiGatewayV2::Api": make_http_api,
    "AWS::Lambda::Function": make_function,
}


# ------------------------------------------------------------------ functions under the RIE


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Function:
    """One built bootstrap under its own Runtime Interface Emulator."""

    def __init__(self, st, logical, rie, endpoint, work):
        self.logical = logical
        props = st.resources[logical]["Properties"]
        made = st.create(logical)
        self.name, self.arn = made["Ref"], made["Arn"]
        self.timeout = int(st.resolve(props.get("Timeout", 3)))
        self.variables = st.resolve(props.get("Environment", {}).get("Variables", {}))
        bad = sorted(set(self.variables) & RESERVED)
        check(not bad, f"{logical} sets Lambda's reserved variables {bad}: Lambda refuses such a function")
        logging_config = st.resolve(props.get("LoggingConfig", {}))
        task_root = os.path.join(st.build_dir, logical)
        bootstrap = os.path.join(task_root, st.resolve(props["Handler"]))
        check(os.access(bootstrap, os.X_OK), f"{logical}: no executable {bootstrap} in the sam build output")
        # What Lambda sets (provided.al2023), then the template's variables, then the one
        # test-only addition: the SDK's endpoint is moto.
        env = {
            "PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "en_US.UTF-8", "TZ": ":UTC",
            "LAMBDA_TASK_ROOT": task_root, "_HANDLER": st.resolve(props["Handler"]),
            "AWS_REGION": REGION, "AWS_DEFAULT_REGION": REGION,
            "AWS_LAMBDA_FUNCTION_NAME": self.name, "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(st.resolve(props.get("MemorySize", 128))),
            "AWS_LAMBDA_FUNCTION_TIMEOUT": str(self.timeout),
            "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
            "AWS_LAMBDA_LOG_GROUP_NAME": logging_config.get("LogGroup", f"/aws/lambda/{self.name}"),
            "AWS_LAMBDA_LOG_STREAM_NAME": f"{time.strftime('%Y/%m/%d')}/[$LATEST]{secrets.token_hex(16)}",
            "AWS_ACCESS_KEY_ID": os.environ.get("AWS_ACCESS_KEY_ID", "testing"),
            "AWS_SECRET_ACCESS_KEY": os.environ.get("AWS_SECRET_ACCESS_KEY", "testing"),
            "AWS_SESSION_TOKEN": "lambda-e2e",
        }
        if "LogFormat" in logging_config:
            env["AWS_LAMBDA_LOG_FORMAT"] = logging_config["LogFormat"]
        env.update({k: str(v) for k, v in self.variables.items()})
        env["AWS_ENDPOINT_URL"] = endpoint
        self.port = free_port()
        self.log_path = os.path.join(work, f"{logical}.log")
        self.log_file = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            [rie, "--log-level", "warn", "--runtime-interface-emulator-address", f"127.0.0.1:{self.port}",
             "--runtime-api-address", f"127.0.0.1:{free_port()}", bootstrap],
            env=env, cwd=task_root, stdout=self.log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True)
        deadline = time.time() + 10
        while True:
            check(self.proc.poll() is None, f"{logical}: aws-lambda-rie exited at start\n{self.tail()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError:
                check(time.time() < deadline, f"{logical}: aws-lambda-rie never listened\n{self.tail()}")
                time.sleep(0.1)

    def var(self, name):
        """A variable the template gives this function (the driver looks where it points)."""
        check(name in self.variables, f"the template gives {self.logical} no {name} (renamed or dropped?)")
        return self.variables[name]

    def invoke(self, event, what):
        """The function's answer to `event`; a function error or a dead sandbox fails the run."""
        req = urllib.request.Request(
            f"http://127.0.0.1:{self.port}/2015-03-31/functions/function/invocations",
            data=json.dumps(event).encode(), method="POST", headers={"content-type": "application/json"})
        started = time.time()
        try:
            with urllib.request.urlopen(req, timeout=self.timeout + 15) as r:
                status, body = r.status, r.read()
        except urllib.error.HTTPError as e:
            status, body = e.code, e.read()
        except OSError as e:
            raise Failed(f"{self.logical} ({what}): invoke failed: {e}\n{self.tail()}") from None
        text = body.decode(errors="replace")
        check(status == 200, f"{self.logical} ({what}): the emulator answered {status}: {text}\n{self.tail()}")
        try:
            result = json.loads(text)
        except ValueError:
            raise Failed(f"{self.logical} ({what}): not JSON: {redact(text)}\n{self.tail()}") from None
        if isinstance(result, dict) and "errorType" in result and "errorMessage" in result:
            raise Failed(redact(f"{self.logical} ({what}): function error {result['errorType']}: "
                                f"{result['errorMessage']}\n{self.tail()}"))
        log(f"  {self.logical}: {what} ({(time.time() - started) * 1000:.0f} ms)")
        return result

    def emf(self, metric):
        """The function's CloudWatch EMF lines (docs/metrics.md) carrying `metric`, oldest first:
        each is a whole line of its own on stdout, not inside a log record."""
        self.log_file.flush()
        found = []
        with open(self.log_path, errors="replace") as f:
            for line in f:
                if not line.startswith("{") or '"_aws":' not in line:
                    continue
                doc = json.loads(line)
                if "_aws" not in doc:
                    continue
                directive = doc["_aws"]["CloudWatchMetrics"][0]
                if metric in doc and directive["Namespace"] == "Arca" \
                        and any(m["Name"] == metric for m in directive["Metrics"]):
                    found.append(doc)
        return found

    def tail(self, n=15):
        self.log_file.flush()
        try:
            with open(self.log_path, errors="replace") as f:
                lines = f.readlines()[-n:]
        except OSError:
            return ""
        return redact(f"--- last lines of {self.logical}'s log ({self.log_path}):\n" + "".join(lines))

    def stop(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.log_file.close()


# ------------------------------------------------------------------ API Gateway (HTTP API, payload 2.0)


class Api:
    def __init__(self, fn, api_url):
        self.fn = fn
        self.url = api_url
        self.host = urllib.parse.urlparse(api_url).hostname
        self.api_id = self.host.split(".")[0]

    def call(self, method, path, key=None, body=None, headers=None, expect=None):
        """One request as API Gateway hands it to the function; returns (status, headers, JSON)."""
        raw_path, _, query = path.partition("?")
        h = {"host": self.host, "user-agent": "arca-lambda-e2e", "accept": "application/json",
             "x-forwarded-proto": "https", "x-forwarded-port": "443", "x-forwarded-for": "127.0.0.1",
             "x-amzn-trace-id": f"Root=1-{int(time.time()):08x}-{secrets.token_hex(12)}"}
        if key:
            h["authorization"] = f"Bearer {key}"
        if body is not None:
            h["content-type"] = "application/json"
        h.update({k.lower(): v for k, v in (headers or {}).items()})
        now = datetime.datetime.now(datetime.timezone.utc)
        event = {
            "version": "2.0", "routeKey": "$default", "rawPath": raw_path, "rawQueryString": query,
            "headers": h,
            "requestContext": {
                "accountId": ACCOUNT, "apiId": self.api_id, "domainName": self.host, "domainPrefix": self.api_id,
                "http": {"method": method, "path": raw_path, "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1",
                         "userAgent": "arca-lambda-e2e"},
                "requestId": base64.b32encode(secrets.token_bytes(10)).decode().rstrip("="),
                "routeKey": "$default", "stage": "$default",
                "time": now.strftime("%d/%b/%Y:%H:%M:%S +0000"), "timeEpoch": int(now.timestamp() * 1000),
            },
            "isBase64Encoded": False,
        }
        if query:
            event["queryStringParameters"] = dict(urllib.parse.parse_qsl(query))
        if body is not None:
            event["body"] = json.dumps(body)
        out = self.fn.invoke(event, f"{method} {raw_path}")
        check(isinstance(out, dict) and "statusCode" in out, f"{method} {path}: not an HTTP API response: {out}")
        text = out.get("body") or ""
        if out.get("isBase64Encoded"):
            text = base64.b64decode(text).decode()
        try:
            doc = json.loads(text) if text else None
        except ValueError:
            doc = text
        status = out["statusCode"]
        if expect is not None:
            check(status == expect, f"{method} {path}: expected HTTP {expect}, got {status}: {text}")
        return status, {k.lower(): v for k, v in (out.get("headers") or {}).items()}, doc


# ------------------------------------------------------------------ the scenario


def sqs_records(queue_arn, messages):
    """What Lambda's SQS event source mapping hands the function for received messages."""
    return {"Records": [{
        "messageId": m["MessageId"], "receiptHandle": m["ReceiptHandle"], "body": m["Body"],
        "attributes": m.get("Attributes", {}), "messageAttributes": {}, "md5OfBody": m["MD5OfBody"],
        "eventSource": "aws:sqs", "eventSourceARN": queue_arn, "awsRegion": REGION,
    } for m in messages]}


def receive_all(sqs, url, expected, what, visibility=None):
    """Receives until `expected` messages came (bounded), as a consumer would."""
    got, deadline = {}, time.time() + 20
    while len(got) < expected and time.time() < deadline:
        kwargs = {"VisibilityTimeout": visibility} if visibility is not None else {}
        for m in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1,
                                     AttributeNames=["All"], **kwargs).get("Messages", []):
            got[m["MessageId"]] = m
    eq(len(got), expected, f"messages on {what}")
    return list(got.values())


def schedule_event(scheduler, st, logical, fn):
    """The event a fixed schedule of the template delivers, read back from moto's Scheduler."""
    made = st.create(logical)
    group = st.resolve(st.resources[logical]["Properties"]["GroupName"])
    s = scheduler.get_schedule(Name=made["Ref"], GroupName=group)
    eq(s["Target"]["Arn"], fn.arn, f"schedule {made['Ref']}'s target")
    eq(s["Target"]["RoleArn"], st.getatt("SchedulerRole", "Arn"), f"schedule {made['Ref']}'s role")
    # Without an Input, Scheduler delivers its default notification: an empty JSON object.
    return json.loads(s["Target"].get("Input") or "{}")


# The functions' binaries (template BuildProperties.Binary), in the order scenario() unpacks them.
FUNCTIONS = ("arca-api", "arca-fn-dispatch", "arca-fn-inventory", "arca-fn-rds", "arca-fn-retention")


def functions_by_handler(st):
    return {p["Metadata"]["BuildProperties"]["Binary"]: name for name, p in st.resources.items()
            if p["Type"] == "AWS::Lambda::Function" and p.get("Metadata", {}).get("BuildProperties", {}).get("Binary")}


def scenario(st, fns, endpoint):
    api_fn, dispatch, inventory, rds, retention = (fns[n] for n in FUNCTIONS)
    sqs, scheduler, ddb = st.client("sqs"), st.client("scheduler"), st.client("dynamodb")
    prefix = api_fn.var("ARCA_QUEUE_PREFIX")
    dlq = st.create("DeadLetterQueue")
    group = api_fn.var("ARCA_SCHEDULE_GROUP")
    table = api_fn.var("ARCA_TABLE")
    api_url = st.resolve(st.t["Outputs"]["ApiUrl"]["Value"])
    api = Api(api_fn, api_url)

    log("fixed schedules on an empty table")
    retention_event = schedule_event(scheduler, st, "RetentionFunctionHourly", retention)
    inventory_event = schedule_event(scheduler, st, "InventoryFunctionEvery12Hours", inventory)
    out = retention.invoke(retention_event, "hourly schedule, empty")
    eq((out["examined"], out["deletionJobs"], out["deadLetters"]), (0, [], 0), "retention on an empty table")
    eq(out["reindexed"], 0, "retention's first run re-indexes the table (a scan, on an empty table: nothing)")
    eq((out["maintenanceJobs"], out["maintenanceAwaitingAgent"]), ([], []),
       "retention's maintenance sweep (the UPKEEPDUE index) on an empty table")
    eq(out["schedules"], {"checked": 0, "repaired": [], "rdsRepaired": [], "orphansRemoved": [], "failed": [],
                          "reindexed": []},
       "retention's schedule reconciliation on an empty table")
    eq((out["purged"], out["purgeFailed"]), ([], []),
       "retention's purges of managed storage (wired from ARCA_MANAGED_*) on an empty table")
    eq(out["rds"], {"examined": 0, "deleted": [], "kept": 0}, "retention's RDS sweep on an empty table")
    out = inventory.invoke(inventory_event, "12-hour schedule, empty")
    eq(out, {"accounts": 0, "failed": [], "resources": 0}, "inventory with no linked account")
    alerts_event = schedule_event(scheduler, st, "RetentionFunctionAlerts", retention)
    eq(alerts_event, {"run": "alerts"}, "the alert sweep's schedule input")
    out = retention.invoke(alerts_event, "5-minute alerts schedule, empty")
    eq(out, {"attempted": 0, "delivered": 0, "disconnected": 0, "missed": 0},
       "the alert sweep (ALERTDUE and ALERTCH in GSI2) on an empty table")

    log("API (HTTP API payload 2.0 events)")
    _, _, health = api.call("GET", "/healthz", expect=200)
    check(isinstance(health, dict), f"/healthz: {health}")
    # The web console, served by the function itself under / (docs/console.md): the built
    # index.html (not the "not built" page) with its CSP, a client route, and its script.
    _, headers, page = api.call("GET", "/", expect=200)
    check("script-src 'self'" in headers.get("content-security-policy", ""), f"/: no console CSP: {headers}")
    check(isinstance(page, str) and '<div id="app">' in page, f"/: not the console's index.html: {page!r:.200}")
    _, _, deep = api.call("GET", "/jobs/job_x", expect=200)
    check(deep == page, "a client route gets the console's index.html")
    script = re.search(r'src="(/assets/[^"]+[.]js)"', page)
    check(script is not None, f"/: no script in {page!r:.300}")
    _, js_headers, _ = api.call("GET", script.group(1), expect=200)
    check(js_headers.get("content-type", "").startswith("text/javascript"), f"{script.group(1)}: {js_headers}")
    _, _, signup = api.call("POST", "/v1/signup", body={"orgName": "lambda-e2e"}, expect=201)
    org, admin = signup["org"]["id"], signup["adminKey"]["secret"]
    default_policy = signup["defaultPolicy"]["id"]
    check(org.startswith("org_"), f"sign-up's org id: {org}")
    items = ddb.scan(TableName=table, Select="COUNT")["Count"]
    check(items > 0, f"sign-up wrote nothing to {table}")

    _, _, cluster = api.call("POST", "/v1/clusters", admin, {"name": "e2e"}, expect=201)
    cluster_id, agent_token = cluster["id"], cluster["agentToken"]
    queue_url = sqs.get_queue_url(QueueName=f"{prefix}-{cluster_id}")["QueueUrl"]
    attrs = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["All"])["Attributes"]
    redrive = json.loads(attrs.get("RedrivePolicy", "{}"))
    eq((redrive.get("deadLetterTargetArn"), int(redrive.get("maxReceiveCount", 0))),
       (dlq["Arn"], int(st.params["MaxReceives"])), f"the cluster queue's redrive policy ({prefix}-{cluster_id})")

    _, _, session = api.call("POST", "/v1/agent/connect", agent_token, {}, expect=200)
    agent_headers = {"x-arca-agent-session": session["sessionId"]}
    api.call("POST", "/v1/agent/heartbeat", agent_token, {}, headers=agent_headers, expect=200)
    _, _, got = api.call("GET", f"/v1/clusters/{cluster_id}", admin, expect=200)
    eq(got["state"], "ACTIVE", "the cluster after its agent's heartbeat")

    _, _, dest = api.call("POST", "/v1/destinations", admin,
                          {"name": "managed", "target": {"kind": "ARCA_MANAGED"}}, expect=201)
    selection = {"namespaces": ["default"]}
    _, _, scheduled = api.call("POST", "/v1/backups", admin, {
        "name": "scheduled", "clusterId": cluster_id, "selection": selection, "policyId": default_policy,
        "destinationId": dest["id"]}, expect=201)
    ours = []
    for s in scheduler.list_schedules(GroupName=group)["Schedules"]:
        full = scheduler.get_schedule(Name=s["Name"], GroupName=group)
        if json.loads(full["Target"].get("Input") or "{}").get("definitionId") == scheduled["id"]:
            ours.append(full)
    check(ours, f"no schedule of backup {scheduled['id']} in group {group}")
    for s in ours:
        eq(s["Target"]["Arn"], dispatch.arn, f"schedule {s['Name']}'s target (ARCA_DISPATCH_ARN)")
        eq(s["Target"]["RoleArn"], st.getatt("SchedulerRole", "Arn"),
           f"schedule {s['Name']}'s role (ARCA_SCHEDULER_ROLE_ARN)")
    fired = json.loads(ours[0]["Target"]["Input"])
    eq(fired["orgId"], org, "the schedule's orgId")

    _, _, adhoc = api.call("POST", "/v1/backups", admin, {
        "name": "adhoc", "clusterId": cluster_id, "selection": selection, "destinationId": dest["id"]},
        expect=201)
    _, _, run = api.call("POST", f"/v1/backups/{adhoc['id']}/run", admin, {}, expect=201)
    eq((run["type"], run["state"]), ("K8S_BACKUP", "PENDING"), "run now's job")

    log("the agent's side: the job from the cluster queue, credentials for Arca-managed storage")
    _, _, polled = api.call("POST", "/v1/agent/poll", agent_token, {}, headers=agent_headers, expect=200)
    eq(polled["job"]["id"], run["id"], "the job the agent's poll leased")
    _, _, access = api.call("POST", f"/v1/agent/jobs/{run['id']}/credentials", agent_token, {},
                            headers=agent_headers, expect=200)
    bucket = st.create("DataBucket")["Ref"]
    eq(access["clusterPrefix"], f"{api_fn.var('ARCA_MANAGED_PREFIX')}/{org}/{cluster_id}/",
       "the vended credentials' prefix (ARCA_MANAGED_PREFIX)")
    check(bucket in json.dumps(access["target"]), f"the destination access names no {bucket} (ARCA_MANAGED_BUCKET)")
    creds = access.get("credentials") or {}
    check(creds.get("sessionToken"), "no credentials vended for Arca-managed storage (ARCA_MANAGED_ROLE_ARN)")
    # The cluster's key, derived from the master key the API read from Secrets Manager.
    check(access.get("archiveKey"), "no archive key (ARCA_ARCHIVE_MASTER_KEY_SECRET)")
    check(re.fullmatch(r"g1-[0-9a-f]{8}", access.get("keyId") or ""), f"the key id {access.get('keyId')!r}")
    # The vended credentials are moto STS's: they write under the prefix.
    key = f"{access['clusterPrefix']}lambda-e2e/probe"
    boto3.Session(aws_access_key_id=creds["accessKeyId"], aws_secret_access_key=creds["secretAccessKey"],
                  aws_session_token=creds["sessionToken"], region_name=REGION).client(
        "s3", endpoint_url=endpoint).put_object(Bucket=bucket, Key=key, Body=b"written with vended credentials")
    eq(st.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read(), b"written with vended credentials",
       f"s3://{bucket}/{key}")
    _, _, done = api.call("POST", f"/v1/agent/jobs/{run['id']}/complete", agent_token, {
        "leaseToken": polled["leaseToken"], "state": "COMPLETED",
        "backup": {"prefix": f"{access['clusterPrefix']}resources-{access['keyId']}/archives/a1", "resourceCount": 1}},
        headers=agent_headers, expect=200)
    check(str(done.get("recoveryPointId", "")).startswith("rp_"), f"completing the backup made no recovery point: {done}")
    _, _, doc = api.call("GET", f"/v1/jobs/{run['id']}", admin, expect=200)
    eq(doc["state"], "COMPLETED", "run now's job once the agent completed it")

    log("dispatch (the backup's schedule fires)")
    out = dispatch.invoke(fired, f"schedule {ours[0]['Name']}")
    check(out.get("jobId") and out.get("state") == "PENDING", f"dispatch ran nothing: {out}")
    _, _, job = api.call("GET", f"/v1/jobs/{out['jobId']}", admin, expect=200)
    eq((job["state"], job.get("definitionId"), job.get("trigger"), job.get("clusterId")),
       ("PENDING", scheduled["id"], "SCHEDULED", cluster_id), "the dispatched job")
    messages = receive_all(sqs, queue_url, 1, f"cluster queue {prefix}-{cluster_id}", visibility=0)
    check(job["id"] in messages[0]["Body"], f"job {job['id']} is not on the cluster queue: {messages[0]['Body']}")
    emf = dispatch.emf("JobsDispatched")
    check(emf, f"dispatch wrote no EMF line\n{dispatch.tail()}")
    eq((emf[-1]["Function"], emf[-1]["Stage"], emf[-1]["JobsDispatched"], emf[-1]["JobsSkipped"]),
       ("dispatch", str(dispatch.var("ARCA_STAGE")), 1, 0), "dispatch's EMF line (CloudWatch metrics)")
    requests = api.fn.emf("Requests")
    check(any(d["Route"] == "/v1/jobs/{id}" and d["StatusClass"] == "2xx" for d in requests),
          f"the API wrote no EMF line for GET /v1/jobs/{{id}}: {requests[-3:]}")

    log("retention on seeded state: the dispatched job's message redriven to the dead-letter queue")
    deadline = time.time() + 30
    while time.time() < deadline:
        if int(sqs.get_queue_attributes(QueueUrl=dlq["Ref"], AttributeNames=["ApproximateNumberOfMessages"])
               ["Attributes"]["ApproximateNumberOfMessages"]) >= 1:
            break
        sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, VisibilityTimeout=0)
    else:
        raise Failed(f"SQS never moved the cluster queue's message to {dlq['QueueName']} after "
                     f"{st.params['MaxReceives']} receives")
    out = retention.invoke(retention_event, "hourly schedule, a dead letter and a recovery point")
    eq((out["deadLetters"], out["examined"], out["deletionJobs"]), (1, 0, []),
       "retention with one dead letter and a recovery point that has not expired")
    eq(out["reindexed"], None, "later retention runs find the table's index generation current")
    _, _, doc = api.call("GET", f"/v1/jobs/{job['id']}", admin, expect=200)
    eq(doc["state"], "FAILED", f"job {job['id']} after its message was dead-lettered")
    eq((out["schedules"]["failed"], out["schedules"]["repaired"], out["schedules"]["orphansRemoved"],
        out["schedules"]["reindexed"]), ([], [], [], []),
       "the schedule reconciliation: the schedules the API wrote need no repair")
    check(out["schedules"]["checked"] >= 2, f"the reconciliation read the definitions: {out['schedules']}")

    log("schedule drift: the backup's schedules deleted behind Arca's back; retention puts them back")
    names = sorted(s["Name"] for s in ours)
    for name in names:
        scheduler.delete_schedule(Name=name, GroupName=group)
    out = retention.invoke(retention_event, "hourly schedule, a definition's schedules deleted")
    eq(out["schedules"]["repaired"], [scheduled["id"]], "the definition whose schedules were deleted")
    back = sorted(s["Name"] for s in scheduler.list_schedules(GroupName=group, NamePrefix=f"{scheduled['id']}-")["Schedules"])
    eq(back, names, "the repaired schedules")
    eq(scheduler.get_schedule(Name=names[0], GroupName=group)["Target"]["Arn"], dispatch.arn,
       "a repaired schedule's target (ARCA_DISPATCH_ARN on the retention function)")

    # Last of the agent's part: the install link is made of the URL the request came in on
    # (no PublicUrl) and the manifest names the stack's agent image (ARCA_AGENT_IMAGE).
    # Fetching it rotates the agent token.
    _, _, link = api.call("POST", f"/v1/clusters/{cluster_id}/install", admin, {}, expect=201)
    check(link["url"].startswith(f"{api_url}/v1/install/"), f"install link not under {api_url}: {link['url']}")
    _, _, manifest = api.call("GET", urllib.parse.urlparse(link["url"]).path, expect=200)
    image = api_fn.var("ARCA_AGENT_IMAGE")
    check(image.startswith(st.getatt("AgentRepository", "RepositoryUri") + ":"), f"ARCA_AGENT_IMAGE {image}")
    check(image in json.dumps(manifest), f"the install manifest does not name {image}")

    log("RDS: a linked account on moto, run now, the work queue's batch")
    account = f"{(time.time_ns() % 900_000_000_000) + 100_000_000_000:012d}"
    creds = st.client("sts").assume_role(RoleArn=f"arn:aws:iam::{account}:role/seed",
                                         RoleSessionName="seed")["Credentials"]
    in_account = boto3.Session(aws_access_key_id=creds["AccessKeyId"], aws_secret_access_key=creds["SecretAccessKey"],
                               aws_session_token=creds["SessionToken"], region_name=REGION)
    db = f"orders-{account}"
    in_account.client("rds", endpoint_url=endpoint).create_db_instance(
        DBInstanceIdentifier=db, DBInstanceClass="db.t3.micro", Engine="postgres", AllocatedStorage=20,
        MasterUsername="arca", MasterUserPassword="not-a-secret-1", BackupRetentionPeriod=7)
    _, headers, linked = api.call("POST", "/v1/cloud-accounts", admin, {"name": "moto", "regions": [REGION]},
                                  expect=201)
    # The role stack's quick-create link: the published template (ARCA_ROLE_STACK_TEMPLATE_URL)
    # and the account-link topic (ARCA_ACCOUNT_LINK_TOPIC_ARN).
    offered = urllib.parse.unquote(json.dumps(linked))
    for what, value in (("ARCA_ROLE_STACK_TEMPLATE_URL", api_fn.var("ARCA_ROLE_STACK_TEMPLATE_URL")),
                        ("ARCA_ACCOUNT_LINK_TOPIC_ARN", st.create("AccountLinkTopic")["Ref"])):
        check(value in offered, f"linking an account offers no {value} ({what}): {offered}")
    _, _, linked = api.call("PUT", f"/v1/cloud-accounts/{linked['id']}/role", admin,
                            {"roleArn": f"arn:aws:iam::{account}:role/arca-cross-account"},
                            headers={"if-match": headers["etag"]}, expect=200)
    eq(linked["state"], "ACTIVE", "the linked account once its role is set")
    out = inventory.invoke(inventory_event, "12-hour schedule, one linked account")
    eq((out["accounts"], out["failed"]), (1, []), "inventory of every linked account")
    check(out["resources"] >= 1, f"the inventory counted no resource: {out}")
    emf = inventory.emf("ResourcesInventoried")
    check(emf and emf[-1]["ResourcesInventoried"] == out["resources"] and emf[-1]["AccountsInventoried"] == 1,
          f"inventory's EMF line does not count what it found: {emf[-1:]}")
    _, _, found = api.call("GET", f"/v1/cloud-accounts/{linked['id']}/inventory", admin, expect=200)
    check(db in json.dumps(found), f"the inventory does not list {db}: {found}")

    _, _, rds_def = api.call("POST", "/v1/rds-backups", admin, {
        "name": "orders", "cloudAccountId": linked["id"], "region": REGION,
        "databases": [{"identifier": db}]}, expect=201)
    _, _, rds_job = api.call("POST", f"/v1/rds-backups/{rds_def['id']}/run", admin, {}, expect=201)
    eq((rds_job["type"], rds_job["state"]), ("RDS_BACKUP", "PENDING"), "the RDS run's job")
    # The queue the event source mapping reads: the API's ARCA_RDS_QUEUE_URL must be it.
    work_url = st.create("RdsWorkQueue")["Ref"]
    mapping = st.resolve(st.resources[rds_mapping(st)]["Properties"])
    eq(mapping.get("EventSourceArn"), st.create("RdsWorkQueue")["Arn"], "the RDS function's event source")
    check("ReportBatchItemFailures" in mapping.get("FunctionResponseTypes", []),
          f"the RDS event source mapping does not report batch item failures: {mapping}")
    sqs.send_message(QueueUrl=work_url, MessageBody="not an RDS job")
    batch = receive_all(sqs, work_url, 2, "the RDS work queue (the run's message, which the API sends to "
                        "ARCA_RDS_QUEUE_URL, and a malformed one)")
    good = [m for m in batch if rds_job["id"] in m["Body"]]
    bad = [m for m in batch if m["Body"] == "not an RDS job"]
    eq((len(good), len(bad)), (1, 1), f"the RDS work queue's messages {[m['Body'] for m in batch]}")
    out = rds.invoke(sqs_records(mapping["EventSourceArn"], batch), "an SQS batch, one good record, one bad")
    eq(out.get("batchItemFailures"), [{"itemIdentifier": bad[0]["MessageId"]}], "batchItemFailures")
    stepped = {s.get("jobId"): s.get("state") for s in out.get("steps", [])}
    # moto's snapshots are available at once, so one step takes the job to the end (on AWS
    # it would be RUNNING, its message sent again with a delay).
    eq(stepped.get(rds_job["id"]), "COMPLETED", f"the RDS job's step ({out})")
    emf = rds.emf("RdsJobsCompleted")
    check(emf, f"the rds function wrote no EMF line\n{rds.tail()}")
    eq((emf[-1]["Steps"], emf[-1]["RdsJobsCompleted"], emf[-1]["Redeliveries"]), (len(out["steps"]), 1, 1),
       "the rds function's EMF line (CloudWatch metrics)")
    # What the event source mapping does with the answer: deletes the records that succeeded.
    sqs.delete_message(QueueUrl=work_url, ReceiptHandle=good[0]["ReceiptHandle"])
    _, _, doc = api.call("GET", f"/v1/jobs/{rds_job['id']}", admin, expect=200)
    eq(doc["state"], "COMPLETED", "the RDS job as the API reads it")
    snapshots = in_account.client("rds", endpoint_url=endpoint).describe_db_snapshots(
        DBInstanceIdentifier=db, SnapshotType="manual")["DBSnapshots"]
    eq(len(snapshots), 1, f"manual snapshots of {db} in account {account}")
    points_path = f"/v1/rds-recoverypoints?definitionId={rds_def['id']}"
    _, _, points = api.call("GET", points_path, admin, expect=200)
    eq([(p["state"], p["snapshot"]["identifier"] if "identifier" in p.get("snapshot", {}) else None)
        for p in points["items"]], [("AVAILABLE", snapshots[0]["DBSnapshotIdentifier"])],
       "the RDS recovery points")

    log("retention with an RDS recovery point that has not expired")
    out = retention.invoke(retention_event, "hourly schedule, seeded")
    eq((out["deadLetters"], out["rds"]), (0, {"examined": 0, "deleted": [], "kept": 0}),
       "retention with nothing expired")
    _, _, points = api.call("GET", points_path, admin, expect=200)
    eq([p["state"] for p in points["items"]], ["AVAILABLE"], "the RDS recovery point after retention")


def rds_mapping(st):
    rds_fn = functions_by_handler(st)["arca-fn-rds"]
    for name, r in st.resources.items():
        if r["Type"] == "AWS::Lambda::EventSourceMapping" and r["Properties"].get("FunctionName") == {"Ref": rds_fn}:
            return name
    raise Failed(f"no SQS event source mapping for {rds_fn} in the template")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build-dir", required=True)
    ap.add_argument("--template", required=True)
    ap.add_argument("--rie", required=True)
    ap.add_argument("--endpoint", required=True)
    ap.add_argument("--work", required=True)
    a = ap.parse_args()
    started = time.time()
    template = json.load(open(a.template))
    session = boto3.Session(aws_access_key_id=os.environ.get("AWS_ACCESS_KEY_ID", "testing"),
                            aws_secret_access_key=os.environ.get("AWS_SECRET_ACCESS_KEY", "testing"),
                            region_name=REGION)
    session_client = session.client

    def client(service, **kw):
        return session_client(service, endpoint_url=a.endpoint, **kw)

    session.client = client
    stage = f"e2e{secrets.token_hex(3)}"
    st = Stack(template, {"Stage": stage, "SignUp": "open"},
               os.path.abspath(a.build_dir), session)
    log(f"stage {stage} on {a.endpoint}; build {a.build_dir}")
    fns = {}
    try:
        by_binary = functions_by_handler(st)
        eq(sorted(by_binary), sorted(FUNCTIONS), "the template's functions")
        for binary, logical in sorted(by_binary.items()):
            fns[binary] = Function(st, logical, a.rie, a.endpoint, a.work)
            log(f"  {logical}: {len(fns[binary].variables)} variables from the template "
                f"({', '.join(sorted(fns[binary].variables))})")
        log(f"resources on moto: {', '.join(sorted(st.created))}")
        scenario(st, fns, a.endpoint)
    except Failed as e:
        log(f"FAILED: {e}")
        return 1
    finally:
        for f in fns.values():
            f.stop()
    log(f"all passed ({time.time() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
