#!/usr/bin/env bash
# scripts/publish-role-stack.sh [--stack-name NAME] [--region REGION] [--profile PROFILE]
#
# Publishes the customer cross-account role stack (cfn/role-stack.yaml) where the
# quick-create links Arca hands out can reach it: the deployed stack's TemplatesBucket,
# key role-stack.yaml, the one object its bucket policy makes world-readable. Run it
# after every `sam deploy` that changes cfn/role-stack.yaml (README "Deploy to AWS").
#
# It reads the stack's outputs (TemplatesBucketName, RoleStackTemplateUrl), uploads the
# template, then reads it back without credentials, as CloudFormation in a customer's
# account will, and prints the URL. AWS credentials and region come from the usual
# places (environment, profile); boto3 comes from the pinned deploy tools
# (scripts/deploy-checks.sh tools).
set -euo pipefail
cd "$(dirname "$0")/.."

stack=${ARCA_STACK_NAME:-arca-dev}

while [ $# -gt 0 ]; do
  case "$1" in
    --stack-name) stack=${2:?--stack-name needs a value}; shift 2 ;;
    --region) export AWS_REGION=${2:?--region needs a value} AWS_DEFAULT_REGION=$2; shift 2 ;;
    --profile) export AWS_PROFILE=${2:?--profile needs a value}; shift 2 ;;
    -h | --help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "publish-role-stack: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
template=cfn/role-stack.yaml
[ -f "$template" ] || { echo "publish-role-stack: $template is missing" >&2; exit 1; }

venv=$(scripts/deploy-checks.sh tools)
"$venv/bin/python" - "$stack" "$template" <<'PY'
import sys

import boto3
import botocore
from botocore import UNSIGNED
from botocore.config import Config

stack, template = sys.argv[1], sys.argv[2]


def fail(message):
    sys.exit(f"publish-role-stack: {message}")


session = boto3.session.Session()
if not session.region_name:
    fail("no AWS region: pass --region or set AWS_REGION")
try:
    described = session.client("cloudformation").describe_stacks(StackName=stack)["Stacks"][0]
except botocore.exceptions.NoCredentialsError:
    fail("no AWS credentials (environment, --profile or instance role)")
except botocore.exceptions.ClientError as e:
    fail(f"stack {stack} in {session.region_name}: {e.response['Error']['Message']} (deploy first, or pass --stack-name)")
outputs = {o["OutputKey"]: o["OutputValue"] for o in described.get("Outputs", [])}
for name in ("TemplatesBucketName", "RoleStackTemplateUrl"):
    if name not in outputs:
        fail(f"stack {stack} has no {name} output: is it an Arca stack deployed from this template.yaml?")
bucket, url = outputs["TemplatesBucketName"], outputs["RoleStackTemplateUrl"]
key = url.rsplit("/", 1)[1]

body = open(template, "rb").read()
session.client("s3").put_object(
    Bucket=bucket, Key=key, Body=body, ContentType="text/yaml", CacheControl="no-cache"
)
# Read back as anyone: what the quick-create link relies on.
anonymous = session.client("s3", config=Config(signature_version=UNSIGNED))
try:
    fetched = anonymous.get_object(Bucket=bucket, Key=key)["Body"].read()
except botocore.exceptions.ClientError as e:
    fail(
        f"s3://{bucket}/{key} was uploaded but is not publicly readable ({e.response['Error']['Code']}): "
        "an account-level S3 Block Public Access setting may override the bucket's policy"
    )
if fetched != body:
    fail(f"s3://{bucket}/{key} reads back different from {template}")
print(f"published {template} ({len(body)} bytes) to s3://{bucket}/{key}")
print(f"template URL: {url}")
PY
