"""Tests of the customer's cross-account role stack (cfn/role-stack.yaml).

Run with the moto virtualenv's python (it has boto3 and PyYAML), after
`scripts/testenv.sh up` and `eval "$(scripts/testenv.sh env)"`:

    ~/.cache/arca-testenv/moto-5.2.5/bin/python -m unittest discover -s cfn/tests -v

Static tests (the template against issue #7's permission list, the custom resource
contract, the single template-version constant) need nothing. The moto tests create one
fresh stack per combination of the four switches in a customer account of their own
(reached by AssumeRole, so other tests' state is untouched), check the role, its trust
policy, its policies and the outputs, then delete the stack. Without moto they are
skipped on a developer machine and fail when CI is set.
"""

import io
import itertools
import json
import os
import re
import sys
import unittest
import urllib.error
import urllib.parse
import urllib.request
import uuid
import zipfile
from pathlib import Path

import yaml

TEMPLATE_PATH = Path(__file__).resolve().parent.parent / "role-stack.yaml"

# Issue #7, "Cross-account role stack (`cfn/`)", the permission list copied verbatim.
ISSUE_PERMISSIONS = """\
  - core: iam:ListAccountAliases, ec2:DescribeRegions
  - EBS: ec2:DeleteSnapshot, ec2:CreateTags, ec2:DescribeVolumes, ec2:CreateSnapshot, ec2:DescribeSnapshots, ec2:CreateVolume
  - RDS: ec2:DescribeSecurityGroups, kms:CreateGrant, kms:DescribeKey, rds:CreateDBInstance, rds:DescribeDBClusters, rds:DescribeDBInstances, rds:ModifyDBInstance, rds:CreateDBSnapshot, rds:DescribeDBSnapshots, rds:DeleteDBSnapshot, rds:DescribeDBSubnetGroups, rds:CreateDBClusterSnapshot, rds:DescribeDBClusterSnapshots, rds:DescribeDBInstanceAutomatedBackups, rds:DeleteDBClusterSnapshot, rds:RestoreDBInstanceFromDBSnapshot, rds:RestoreDBClusterFromSnapshot, rds:DescribeDBParameterGroups, rds:DescribeDBClusterParameterGroups, rds:DescribeOptionGroups, rds:RestoreDBInstanceToPointInTime, rds:RestoreDBClusterToPointInTime, rds:CopyDBSnapshot, rds:CopyDBClusterSnapshot, rds:AddTagsToResource
  - EKS: eks:CreateCluster, eks:CreateNodegroup, eks:DescribeCluster, eks:DescribeNodegroup, eks:ListClusters, eks:ListNodegroups, ec2:DescribeSubnets, ec2:DescribeKeyPairs, ec2:DescribeNetworkAcls, ec2:DescribeRouteTables, ec2:DescribeLaunchTemplateVersions, ec2:CreateLaunchTemplate, ec2:RunInstances, iam:ListUsers, iam:PassRole, iam:GetRole, iam:ListAttachedRolePolicies, iam:CreateServiceLinkedRole
  - Security scanning: ses:DescribeActiveReceiptRuleSet, athena:GetWorkGroup, logs:DescribeLogGroups, logs:DescribeMetricFilters, elastictranscoder:ListPipelines, elasticfilesystem:DescribeFileSystems, servicequotas:ListServiceQuotas, and the AWS managed policy SecurityAudit
"""

# Granted beyond issue #7's list, with the issue that needs them: restore verification
# (#19) deletes its temporary databases (conditions in test_rds_writes_only_on_arcas_resources).
BEYOND_ISSUE = {"RDS": {"rds:DeleteDBInstance", "rds:DeleteDBCluster"}}

# The issue's set names -> (switch parameter or None for core, policy resource, policy
# name, id in the PermissionSets output/property).
SETS = {
    "core": (None, "CorePolicy", "arca-core", "core"),
    "RDS": ("EnableRds", "RdsPolicy", "arca-rds", "rds"),
    "EBS": ("EnableEbs", "EbsPolicy", "arca-ebs", "ebs"),
    "EKS": ("EnableEks", "EksPolicy", "arca-eks", "eks"),
    "Security scanning": (
        "EnableSecurityScanning",
        "SecurityScanningPolicy",
        "arca-security-scanning",
        "security-scanning",
    ),
}
SWITCHES = ["EnableRds", "EnableEbs", "EnableEks", "EnableSecurityScanning"]
# Order of the ids in PermissionSets (documented in the template and cfn/README.md).
SET_ORDER = ["core", "RDS", "EBS", "EKS", "Security scanning"]

# The custom resource's ResourceProperties, as documented (template header, README).
LINK_PROPERTIES = {
    "ServiceToken",
    "ServiceTimeout",
    "AccountLinkId",
    "ExternalId",
    "AccountId",
    "RoleArn",
    "TemplateVersion",
    "PermissionSets",
}

EXTERNAL_ID = "arca-test-0123456789abcdef"
CUSTOMER_ACCOUNT = "100000000007"  # the linked account the stacks go into (moto)
# The functions of Arca's deployment that assume the role (template.yaml: the API,
# inventory, RDS and retention functions call sts:AssumeRole on it).
ARCA_FUNCTIONS = ["ApiFunction", "InventoryFunction", "RdsFunction", "RetentionFunction"]


def principal_arns(account):
    return [f"arn:aws:iam::{account}:role/arca-dev-{f}Role-TEST" for f in ARCA_FUNCTIONS]


def parse_issue_permissions(text):
    """{set name: (actions, managed policy names)} from the issue's list."""
    sets = {}
    for line in text.splitlines():
        m = re.fullmatch(r"\s*- ([^:]+): (.*)", line)
        assert m, f"unexpected line in the issue's list: {line!r}"
        name, rest = m.groups()
        actions, managed = set(), set()
        for item in rest.split(", "):
            item = item.strip()
            mp = re.fullmatch(r"and the AWS managed policy (\w+)", item)
            if mp:
                managed.add(mp.group(1))
            else:
                assert re.fullmatch(r"[a-z0-9-]+:[A-Za-z0-9]+", item), item
                assert item not in actions, f"{item} twice in {name}"
                actions.add(item)
        sets[name] = (actions, managed)
    return sets


# ---------------------------------------------------------------- the template


class CfnLoader(yaml.SafeLoader):
    """YAML loader that turns CloudFormation's short tags into their long form."""


def _cfn_tag(loader, suffix, node):
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    if suffix == "Ref":
        return {"Ref": value}
    if suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    if suffix == "Condition":
        return {"Condition": value}
    return {"Fn::" + suffix: value}


CfnLoader.add_multi_constructor("!", _cfn_tag)


def load_template():
    return yaml.load(TEMPLATE_PATH.read_text(), Loader=CfnLoader)


class Evaluator:
    """The few intrinsic functions the template uses, evaluated as CloudFormation does."""

    NO_VALUE = object()

    def __init__(self, template, params, pseudo, attributes):
        self.t = template
        self.params = {
            k: v.get("Default") for k, v in template["Parameters"].items()
        } | params
        self.pseudo = pseudo
        self.attributes = attributes  # {"Role.Arn": ...}

    def condition(self, name):
        return self.cond(self.t["Conditions"][name])

    def cond(self, expr):
        if "Fn::Equals" in expr:
            a, b = (self.eval(x) for x in expr["Fn::Equals"])
            return a == b
        if "Fn::Not" in expr:
            return not self.cond(expr["Fn::Not"][0])
        if "Fn::And" in expr:
            return all(self.cond(x) for x in expr["Fn::And"])
        if "Condition" in expr:
            return self.condition(expr["Condition"])
        raise AssertionError(f"unsupported condition {expr}")

    def ref(self, name):
        if name == "AWS::NoValue":
            return self.NO_VALUE
        if name in self.pseudo:
            return self.pseudo[name]
        return self.params[name]

    def eval(self, expr):
        if isinstance(expr, list):
            return [v for v in (self.eval(x) for x in expr) if v is not self.NO_VALUE]
        if not isinstance(expr, dict):
            return expr
        if len(expr) == 1:
            (fn, arg), = expr.items()
            if fn == "Ref":
                return self.ref(arg)
            if fn == "Fn::If":
                name, yes, no = arg
                return self.eval(yes if self.condition(name) else no)
            if fn == "Fn::Join":
                return arg[0].join(self.eval(arg[1]))
            if fn == "Fn::Split":
                return self.eval(arg[1]).split(arg[0])
            if fn == "Fn::FindInMap":
                m, k1, k2 = (self.eval(x) for x in arg)
                return self.t["Mappings"][m][k1][k2]
            if fn == "Fn::GetAtt":
                return self.attributes[".".join(arg)]
            if fn == "Fn::Sub":
                text, local = (arg, {}) if isinstance(arg, str) else arg
                local = {k: self.eval(v) for k, v in local.items()}

                def one(m):
                    var = m.group(1)
                    if var in local:
                        return str(local[var])
                    if "." in var:
                        return str(self.attributes[var])
                    return str(self.ref(var))

                return re.sub(r"\$\{([^!}][^}]*)\}", one, text)
            if fn.startswith("Fn::"):
                raise AssertionError(f"unsupported function {fn}")
        return {k: v for k, v in ((k, self.eval(v)) for k, v in expr.items()) if v is not self.NO_VALUE}


def policy_actions(document):
    """All actions of a policy document, checking the statement shape on the way."""
    actions = []
    for st in document["Statement"]:
        assert st["Effect"] == "Allow", st
        assert "NotAction" not in st and "NotResource" not in st, st
        a = st["Action"]
        actions += [a] if isinstance(a, str) else a
    for a in actions:
        assert "*" not in a, f"wildcard action {a}"
    return actions


def combos():
    """Every combination of the four switches, as {switch: "true"|"false"}."""
    for values in itertools.product(["true", "false"], repeat=len(SWITCHES)):
        yield dict(zip(SWITCHES, values))


def expected_for(switches):
    """(enabled set names in SET_ORDER, expected PermissionSets string)."""
    enabled = [s for s in SET_ORDER if SETS[s][0] is None or switches[SETS[s][0]] == "true"]
    return enabled, ",".join(SETS[s][3] for s in enabled)


def managed_policy_arns(template, params, partition="aws"):
    ev = Evaluator(template, params, {"AWS::Partition": partition}, {})
    arns = template["Resources"]["Role"]["Properties"].get("ManagedPolicyArns")
    value = ev.eval(arns) if arns is not None else Evaluator.NO_VALUE
    return [] if value is Evaluator.NO_VALUE else value


class TemplateTest(unittest.TestCase):
    """The template itself, without AWS."""

    @classmethod
    def setUpClass(cls):
        cls.t = load_template()
        cls.issue = parse_issue_permissions(ISSUE_PERMISSIONS)

    def test_permission_sets_match_the_issue_both_ways(self):
        self.assertEqual(set(self.issue), set(SETS), "the issue's set names")
        resources = self.t["Resources"]
        policies = {k for k, r in resources.items() if r["Type"] == "AWS::IAM::Policy"}
        self.assertEqual(policies, {v[1] for v in SETS.values()}, "one policy resource per set")
        for name, (switch, logical, policy_name, _) in SETS.items():
            with self.subTest(set=name):
                want_actions, want_managed = self.issue[name]
                want_actions = want_actions | BEYOND_ISSUE.get(name, set())
                res = resources[logical]
                props = res["Properties"]
                self.assertEqual(props["PolicyName"], policy_name)
                self.assertEqual(props["Roles"], [{"Ref": "Role"}])
                got = policy_actions(props["PolicyDocument"])
                # An action may be granted by several statements (one per resource type
                # and condition), never twice in one.
                for st in props["PolicyDocument"]["Statement"]:
                    a = [st["Action"]] if isinstance(st["Action"], str) else st["Action"]
                    self.assertEqual(len(a), len(set(a)), f"an action twice in {logical}/{st['Sid']}")
                got = set(got)
                self.assertEqual(
                    (sorted(want_actions - got), sorted(got - want_actions)),
                    ([], []),
                    f"{name}: (in the issue but not the template, in the template but not the issue)",
                )
                if switch is None:
                    self.assertNotIn("Condition", res, "core is unconditional")
                else:
                    cond = res["Condition"]
                    self.assertEqual(
                        self.t["Conditions"][cond],
                        {"Fn::Equals": [{"Ref": switch}, "true"]},
                    )
                # The AWS managed policies of this set: attached exactly when it is on.
                for on in ("true", "false"):
                    params = {s: "true" for s in SWITCHES}
                    if switch:
                        params[switch] = on
                    arns = managed_policy_arns(self.t, params)
                    names = {a.rsplit("/", 1)[1] for a in arns}
                    if switch is None or on == "true":
                        self.assertTrue(want_managed <= names, (name, on, arns))
                    else:
                        self.assertFalse(want_managed & names, (name, on, arns))
        # No managed policy beyond the issue's, and only AWS managed ones.
        all_managed = set().union(*(m for _, m in self.issue.values()))
        for switches in combos():
            arns = managed_policy_arns(self.t, switches)
            self.assertEqual(len(arns), len(set(arns)))
            for a in arns:
                self.assertRegex(a, r"^arn:aws:iam::aws:policy/\w+$")
            self.assertEqual(
                {a.rsplit("/", 1)[1] for a in arns},
                {m for s, (_, ms) in self.issue.items() for m in ms
                 if SETS[s][0] is None or switches[SETS[s][0]] == "true"},
            )
            self.assertTrue({a.rsplit("/", 1)[1] for a in arns} <= all_managed)

    def test_parameters(self):
        p = self.t["Parameters"]
        for s in SWITCHES:
            self.assertEqual(p[s]["Default"], "true", s)
            self.assertEqual(p[s]["AllowedValues"], ["true", "false"], s)
        for required in ("ArcaAccountId", "ExternalId"):
            self.assertNotIn("Default", p[required], f"{required} must be given")
        self.assertIn("AllowedPattern", p["ExternalId"])
        self.assertGreaterEqual(p["ExternalId"]["MinLength"], 2)
        self.assertEqual(p["ArcaNotificationTopicArn"]["Default"], "")
        self.assertEqual(p["ArcaAccountLinkId"]["Default"], "")
        pat = re.compile(p["ExternalId"]["AllowedPattern"])
        self.assertTrue(pat.fullmatch(EXTERNAL_ID))
        self.assertFalse(pat.fullmatch("has space 0123456789"))
        self.assertTrue(re.fullmatch(p["ArcaAccountId"]["AllowedPattern"], "123456789012"))
        self.assertFalse(re.fullmatch(p["ArcaAccountId"]["AllowedPattern"], "12345678901"))

    def test_trust_policy_names_arcas_roles_and_requires_the_external_id(self):
        doc = self.t["Resources"]["Role"]["Properties"]["AssumeRolePolicyDocument"]
        arns = principal_arns("111122223333")
        ev = Evaluator(self.t, {"ArcaAccountId": "111122223333", "ExternalId": EXTERNAL_ID,
                                "ArcaPrincipalArns": ",".join(arns)},
                       {"AWS::Partition": "aws"}, {})
        self.assertEqual(
            ev.eval(doc)["Statement"],
            [{
                "Sid": "ArcaWithExternalId",
                "Effect": "Allow",
                "Principal": {"AWS": arns},
                "Action": "sts:AssumeRole",
                "Condition": {"StringEquals": {"sts:ExternalId": EXTERNAL_ID,
                                               "aws:PrincipalAccount": "111122223333"}},
            }],
        )
        self.assertNotIn(":root", json.dumps(doc), "never the whole Arca account")
        # The parameter takes role ARNs only: no wildcard, no root, no spaces.
        p = self.t["Parameters"]["ArcaPrincipalArns"]
        self.assertNotIn("Default", p, "the principals must be given")
        pat = re.compile(p["AllowedPattern"])
        self.assertTrue(pat.fullmatch(",".join(arns)))
        self.assertTrue(pat.fullmatch(arns[0]))
        for bad in ("", "arn:aws:iam::111122223333:root", "arn:aws:iam::111122223333:role/*",
                    "arn:aws:iam::111122223333:role/a, arn:aws:iam::111122223333:role/b",
                    "arn:aws:iam::111122223333:user/bob", "*"):
            self.assertFalse(pat.fullmatch(bad), bad)

    def statements(self, switches=None, **params):
        """{Sid: statement} of every enabled policy, evaluated for these parameters."""
        values = {s: "true" for s in SWITCHES} | (switches or {}) | params
        ev = Evaluator(self.t, values, {"AWS::Partition": "aws", "AWS::AccountId": "210987654321"}, {})
        out = {}
        for _, logical, _, _ in SETS.values():
            res = self.t["Resources"][logical]
            if "Condition" in res and not ev.condition(res["Condition"]):
                continue
            for st in ev.eval(res["Properties"]["PolicyDocument"])["Statement"]:
                self.assertNotIn(st["Sid"], out, "Sids are unique")
                out[st["Sid"]] = st
        return out

    def grant(self, statements, action):
        """The statements that allow `action`."""
        return [st for st in statements.values()
                if action in ([st["Action"]] if isinstance(st["Action"], str) else st["Action"])]

    def test_only_reads_are_unconditional_on_every_resource(self):
        """Resource "*" without a condition only for Describe/List/Get (AWS allows nothing
        narrower for them) and the read-only security-scanning set."""
        read = re.compile(r"^[a-z0-9-]+:(Describe|List|Get)[A-Za-z]*$")
        for sid, st in self.statements().items():
            actions = [st["Action"]] if isinstance(st["Action"], str) else st["Action"]
            resources = [st["Resource"]] if isinstance(st["Resource"], str) else st["Resource"]
            if "*" in resources and "Condition" not in st:
                self.assertEqual([a for a in actions if not read.match(a)], [], sid)
            for r in resources:
                self.assertNotIn("iam::*", r, f"{sid}: only this account's IAM resources")

    def test_pass_role_only_named_or_tagged_roles_to_eks_and_ec2(self):
        named = "arn:aws:iam::210987654321:role/eks-cluster,arn:aws:iam::210987654321:role/eks-node"
        for eks_roles in ("", named):
            with self.subTest(EksRoleArns=eks_roles):
                grants = self.grant(self.statements(EksRoleArns=eks_roles), "iam:PassRole")
                self.assertEqual(len(grants), 2)
                for st in grants:
                    self.assertEqual(st["Action"], "iam:PassRole", "PassRole alone")
                    self.assertEqual(st["Condition"]["StringEquals"]["iam:PassedToService"],
                                     ["eks.amazonaws.com", "ec2.amazonaws.com"])
                tagged = next(st for st in grants if st["Sid"] == "EksPassTaggedRoles")
                self.assertEqual(tagged["Resource"], "arn:aws:iam::210987654321:role/*")
                self.assertEqual(tagged["Condition"]["StringEquals"]["iam:ResourceTag/arca:eks-restore"], "true")
                by_name = next(st for st in grants if st["Sid"] == "EksPassNamedRoles")
                self.assertEqual(by_name["Resource"], named.split(",") if eks_roles else
                                 "arn:aws:iam::210987654321:role/arca-eks-restore/*")
        p = re.compile(self.t["Parameters"]["EksRoleArns"]["AllowedPattern"])
        self.assertTrue(p.fullmatch("") and p.fullmatch(named))
        self.assertFalse(p.fullmatch("arn:aws:iam::210987654321:role/*"))
        self.assertFalse(self.grant(self.statements({"EnableEks": "false"}, EksRoleArns=named), "iam:PassRole"))

    def test_instances_and_launch_templates_only_for_eks_node_groups(self):
        st = self.statements()
        (lt,) = self.grant(st, "ec2:CreateLaunchTemplate")
        self.assertEqual(lt["Resource"], "arn:aws:ec2:*:210987654321:launch-template/*")
        self.assertEqual(lt["Condition"], {"Null": {"aws:RequestTag/eks:cluster-name": "false"}})
        runs = {s["Sid"]: s for s in self.grant(st, "ec2:RunInstances")}
        self.assertEqual(runs["EksNodeInstances"]["Condition"],
                         {"Null": {"aws:RequestTag/eks:cluster-name": "false"}})
        self.assertEqual(runs["EksNodeInstances"]["Resource"],
                         ["arn:aws:ec2:*:210987654321:instance/*", "arn:aws:ec2:*:210987654321:volume/*"])
        self.assertEqual(runs["EksNodeInstancesFromEksTemplates"]["Condition"],
                         {"Null": {"ec2:ResourceTag/eks:cluster-name": "false"}})
        # The rest are what a launch references, never an instance without the tag.
        for r in runs["EksNodeInstancesReferences"]["Resource"]:
            self.assertNotRegex(r, r":(instance|volume|launch-template)/")
        self.assertEqual(set(runs), {"EksNodeInstances", "EksNodeInstancesFromEksTemplates",
                                     "EksNodeInstancesReferences"})
        (slr,) = self.grant(st, "iam:CreateServiceLinkedRole")
        self.assertEqual(slr["Condition"]["StringEquals"]["iam:AWSServiceName"],
                         ["eks.amazonaws.com", "eks-nodegroup.amazonaws.com"])

    def test_rds_writes_only_on_arcas_resources(self):
        st = self.statements()
        (modify,) = self.grant(st, "rds:ModifyDBInstance")
        self.assertEqual(modify["Resource"], "arn:aws:rds:*:210987654321:db:*")
        self.assertEqual(modify["Condition"], {"Null": {"rds:db-tag/arca:restore-job": "false"}})
        (delete,) = self.grant(st, "rds:DeleteDBSnapshot")
        self.assertEqual(delete["Resource"], "arn:aws:rds:*:210987654321:snapshot:*")
        self.assertEqual(delete["Condition"], {"Null": {"rds:snapshot-tag/arca:recovery-point": "false"}})
        (delete,) = self.grant(st, "rds:DeleteDBClusterSnapshot")
        self.assertEqual(delete["Resource"], "arn:aws:rds:*:210987654321:cluster-snapshot:*")
        self.assertEqual(delete["Condition"],
                         {"Null": {"rds:cluster-snapshot-tag/arca:recovery-point": "false"}})
        for action in ("rds:CreateDBSnapshot", "rds:CreateDBClusterSnapshot",
                       "rds:CopyDBSnapshot", "rds:CopyDBClusterSnapshot"):
            (g,) = self.grant(st, action)
            self.assertEqual(g["Condition"], {"Null": {"aws:RequestTag/arca:recovery-point": "false"}}, action)
        for action in ("rds:RestoreDBInstanceFromDBSnapshot", "rds:RestoreDBInstanceToPointInTime",
                       "rds:RestoreDBClusterFromSnapshot", "rds:RestoreDBClusterToPointInTime",
                       "rds:CreateDBInstance"):
            (g,) = self.grant(st, action)
            self.assertEqual(g["Condition"], {"Null": {"aws:RequestTag/arca:restore-job": "false"}}, action)
        (delete,) = self.grant(st, "rds:DeleteDBInstance")
        self.assertEqual(delete["Resource"], "arn:aws:rds:*:210987654321:db:arca-verify-*")
        self.assertEqual(delete["Condition"], {"Null": {"rds:db-tag/arca:verification-job": "false"}})
        (delete,) = self.grant(st, "rds:DeleteDBCluster")
        self.assertEqual(delete["Resource"], "arn:aws:rds:*:210987654321:cluster:arca-verify-*")
        self.assertEqual(delete["Condition"], {"Null": {"rds:cluster-tag/arca:verification-job": "false"}})
        (tags,) = self.grant(st, "rds:AddTagsToResource")
        self.assertEqual(tags["Condition"], {"ForAllValues:StringLike": {"aws:TagKeys": ["arca:*"]}})
        (grant,) = self.grant(st, "kms:CreateGrant")
        self.assertEqual(grant["Condition"], {"Bool": {"kms:GrantIsForAWSResource": "true"}})

    def test_ebs_tags_only_on_create_and_deletes_only_arca_snapshots(self):
        st = self.statements()
        (tags,) = self.grant(st, "ec2:CreateTags")
        self.assertEqual(tags["Condition"], {"StringEquals": {"ec2:CreateAction": ["CreateSnapshot", "CreateVolume"]}})
        (delete,) = self.grant(st, "ec2:DeleteSnapshot")
        self.assertEqual(delete["Resource"], "arn:aws:ec2:*::snapshot/*")
        self.assertEqual(delete["Condition"], {"Null": {"aws:ResourceTag/arca:recovery-point": "false"}})
        snaps = {s["Sid"]: s for s in self.grant(st, "ec2:CreateSnapshot")}
        self.assertEqual(snaps["EbsCreateArcaSnapshots"]["Condition"],
                         {"Null": {"aws:RequestTag/arca:recovery-point": "false"}})
        self.assertEqual(snaps["EbsSnapshotVolumes"]["Resource"], "arn:aws:ec2:*:210987654321:volume/*")
        vols = {s["Sid"]: s for s in self.grant(st, "ec2:CreateVolume")}
        self.assertEqual(vols["EbsRestoreVolumes"]["Condition"], {"Null": {"aws:RequestTag/arca:restore": "false"}})
        self.assertEqual(vols["EbsRestoreFromArcaSnapshots"]["Condition"],
                         {"Null": {"aws:ResourceTag/arca:recovery-point": "false"}})

    def test_the_tags_the_conditions_name_are_the_ones_arca_sets(self):
        """The conditions' tag keys are literally those Arca's code puts on what it makes."""
        root = TEMPLATE_PATH.parent.parent / "shared" / "arca-core" / "src"
        code = {
            "arca:recovery-point": [root / "model/rds/naming.rs", root / "model/cloud/ebs.rs"],
            "arca:restore-job": [root / "control_plane/rds/step.rs"],
            "arca:restore": [root / "model/cloud/ebs.rs"],
            "arca:verification-job": [root / "model/rds/verification.rs"],
        }
        for tag, files in code.items():
            for f in files:
                self.assertIn(f'"{tag}"', f.read_text(), f"{f} sets {tag}")

    def test_template_version_has_exactly_one_place(self):
        version = self.t["Mappings"]["Template"]["Version"]["Value"]
        self.assertRegex(version, r"^\d+\.\d+\.\d+$")
        self.assertEqual(TEMPLATE_PATH.read_text().count(version), 1,
                         "the version literal must appear once (Mappings.Template.Version)")
        find = {"Fn::FindInMap": ["Template", "Version", "Value"]}
        self.assertEqual(self.t["Outputs"]["TemplateVersion"]["Value"], find)
        self.assertEqual(
            self.t["Resources"]["ArcaAccountLink"]["Properties"]["TemplateVersion"], find
        )

    def test_custom_resource_contract(self):
        res = self.t["Resources"]["ArcaAccountLink"]
        self.assertEqual(res["Type"], "Custom::ArcaAccountLink")
        self.assertEqual(self.t["Conditions"][res["Condition"]],
                         {"Fn::Not": [{"Fn::Equals": [{"Ref": "ArcaNotificationTopicArn"}, ""]}]})
        props = res["Properties"]
        self.assertEqual(set(props), LINK_PROPERTIES)
        # The same expressions as the outputs, which moto evaluates in MotoStackTest.
        self.assertEqual(props["RoleArn"], self.t["Outputs"]["RoleArn"]["Value"])
        self.assertEqual(props["PermissionSets"], self.t["Outputs"]["PermissionSets"]["Value"])
        # The documented names are in the template's header and in cfn/README.md.
        header = TEMPLATE_PATH.read_text().split("AWSTemplateFormatVersion")[0]
        readme = (TEMPLATE_PATH.parent / "README.md").read_text()
        for name in LINK_PROPERTIES:
            self.assertRegex(header, rf"#\s+{name}\s", f"{name} documented in the template")
            self.assertIn(f"`{name}`", readme, f"{name} documented in cfn/README.md")
        for switches in combos():
            params = switches | {
                "ExternalId": EXTERNAL_ID,
                "ArcaAccountLinkId": "link-1",
                "ArcaNotificationTopicArn": "arn:aws:sns:us-east-1:111122223333:arca-links",
            }
            ev = Evaluator(self.t, params,
                           {"AWS::Partition": "aws", "AWS::AccountId": "210987654321"},
                           {"Role.Arn": "arn:aws:iam::210987654321:role/arca-cross-account"})
            self.assertTrue(ev.condition(res["Condition"]))
            _, permission_sets = expected_for(switches)
            self.assertEqual(ev.eval(props), {
                "ServiceToken": "arn:aws:sns:us-east-1:111122223333:arca-links",
                "ServiceTimeout": 600,
                "AccountLinkId": "link-1",
                "ExternalId": EXTERNAL_ID,
                "AccountId": "210987654321",
                "RoleArn": "arn:aws:iam::210987654321:role/arca-cross-account",
                "TemplateVersion": self.t["Mappings"]["Template"]["Version"]["Value"],
                "PermissionSets": permission_sets,
            })
        self.assertIn("LinkIdWithTopic", self.t["Rules"], "a topic needs a link id")


# ---------------------------------------------------------------- moto


def ci():
    return os.environ.get("CI", "").lower() not in ("", "0", "false")


def moto_endpoint():
    """The moto endpoint, or None (after a loud message) when it isn't there."""
    endpoint = os.environ.get("AWS_ENDPOINT_URL")
    why = None
    if not endpoint:
        why = "AWS_ENDPOINT_URL is not set"
    else:
        try:
            urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=5).read()
        except (urllib.error.URLError, OSError) as e:
            why = f"moto is not reachable at {endpoint}: {e}"
    if why is None:
        return endpoint
    how = 'start it: scripts/testenv.sh up && eval "$(scripts/testenv.sh env)"'
    if ci():
        raise RuntimeError(f"the test environment is missing ({why}) and CI is set: {how}")
    print(f"\n*** SKIPPING the moto tests of cfn/role-stack.yaml: {why}; {how} ***\n",
          file=sys.stderr)
    return None


class MotoStackTest(unittest.TestCase):
    """create_stack on moto, one fresh stack per combination of the switches."""

    @classmethod
    def setUpClass(cls):
        cls.endpoint = moto_endpoint()
        if cls.endpoint is None:
            raise unittest.SkipTest("moto is not running (see the message above)")
        import boto3

        cls.region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
        base = boto3.Session(region_name=cls.region)
        # The Arca account is moto's default account; the stacks go into another one.
        cls.arca_account = base.client("sts").get_caller_identity()["Account"]
        creds = base.client("sts").assume_role(
            RoleArn=f"arn:aws:iam::{CUSTOMER_ACCOUNT}:role/arca-cfn-tests",
            RoleSessionName="arca-cfn-tests",
        )["Credentials"]
        cls.session = boto3.Session(
            aws_access_key_id=creds["AccessKeyId"],
            aws_secret_access_key=creds["SecretAccessKey"],
            aws_session_token=creds["SessionToken"],
            region_name=cls.region,
        )
        cls.cf = cls.session.client("cloudformation")
        cls.iam = cls.session.client("iam")
        assert cls.session.client("sts").get_caller_identity()["Account"] == CUSTOMER_ACCOUNT
        cls.body = TEMPLATE_PATH.read_text()
        cls.t = load_template()
        cls.issue = parse_issue_permissions(ISSUE_PERMISSIONS)
        cls.version = cls.t["Mappings"]["Template"]["Version"]["Value"]
        cls.run_id = uuid.uuid4().hex[:8]
        # The deployment's function roles, in Arca's account (moto's default one).
        arca_iam = base.client("iam")
        cls.principals = []
        for f in ARCA_FUNCTIONS:
            cls.principals.append(arca_iam.create_role(
                RoleName=f"arca-test-{cls.run_id}-{f}Role",
                AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [{
                    "Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"},
                    "Action": "sts:AssumeRole"}]}),
            )["Role"]["Arn"])
        cls.addClassCleanup(lambda: [arca_iam.delete_role(RoleName=a.rsplit("/", 1)[1])
                                     for a in cls.principals])
        cls.managed_policy_arns_supported = cls.probe_managed_policy_arns()
        if not cls.managed_policy_arns_supported:
            print("\nnote: this moto ignores Role.ManagedPolicyArns in CloudFormation; the "
                  "SecurityAudit attachment is checked statically (TemplateTest) and here only "
                  "as 'never when disabled, nothing else ever'", file=sys.stderr)

    @classmethod
    def probe_managed_policy_arns(cls):
        """Does this moto attach a Role's ManagedPolicyArns? (5.2.5 does not.)"""
        name = f"arca-probe-{cls.run_id}"
        body = {
            "Resources": {
                "P": {"Type": "AWS::IAM::ManagedPolicy", "Properties": {"PolicyDocument": {
                    "Version": "2012-10-17",
                    "Statement": [{"Effect": "Allow", "Action": "s3:ListAllMyBuckets", "Resource": "*"}]}}},
                "R": {"Type": "AWS::IAM::Role", "Properties": {
                    "RoleName": name, "ManagedPolicyArns": [{"Ref": "P"}],
                    "AssumeRolePolicyDocument": {"Version": "2012-10-17", "Statement": []}}},
            }
        }
        cls.cf.create_stack(StackName=name, TemplateBody=json.dumps(body),
                            Capabilities=["CAPABILITY_NAMED_IAM"])
        policy_arn = next(r["PhysicalResourceId"] for r in
                          cls.cf.list_stack_resources(StackName=name)["StackResourceSummaries"]
                          if r["LogicalResourceId"] == "P")
        try:
            return bool(cls.iam.list_attached_role_policies(RoleName=name)["AttachedPolicies"])
        finally:
            cls.cf.delete_stack(StackName=name)
            try:  # moto 5.2.5's delete_stack leaves the managed policy behind
                cls.iam.delete_policy(PolicyArn=policy_arn)
            except cls.iam.exceptions.NoSuchEntityException:
                pass

    def values(self, role_name, switches, **extra):
        return {"ArcaAccountId": self.arca_account, "ExternalId": EXTERNAL_ID,
                "ArcaPrincipalArns": ",".join(self.principals),
                "RoleName": role_name} | switches | extra

    def params(self, role_name, switches, **extra):
        values = self.values(role_name, switches, **extra)
        return [{"ParameterKey": k, "ParameterValue": v} for k, v in values.items()]

    def create(self, name, params):
        self.cf.create_stack(StackName=name, TemplateBody=self.body, Parameters=params,
                             Capabilities=["CAPABILITY_NAMED_IAM"])
        return self.cf.describe_stacks(StackName=name)["Stacks"][0]

    def test_every_switch_combination(self):
        for i, switches in enumerate(combos()):
            # Every other stack names EKS roles (EksPassNamedRoles), the rest rely on the tag.
            eks_roles = (f"arn:aws:iam::{CUSTOMER_ACCOUNT}:role/eks-cluster,"
                         f"arn:aws:iam::{CUSTOMER_ACCOUNT}:role/eks-node") if i % 2 == 0 else ""
            with self.subTest(EksRoleArns=eks_roles, **switches):
                self.check_combination(f"arca-role-test-{self.run_id}-{i:02d}", switches, eks_roles)

    def check_combination(self, name, switches, eks_roles):
        enabled, permission_sets = expected_for(switches)
        values = self.values(name, switches, EksRoleArns=eks_roles)
        stack = self.create(name, self.params(name, switches, EksRoleArns=eks_roles))
        try:
            self.assertEqual(stack["StackStatus"], "CREATE_COMPLETE", stack.get("StackStatusReason"))
            role = self.iam.get_role(RoleName=name)["Role"]
            self.assertEqual(role["Arn"], f"arn:aws:iam::{CUSTOMER_ACCOUNT}:role/{name}")
            trust = role["AssumeRolePolicyDocument"]
            if isinstance(trust, str):
                trust = json.loads(urllib.parse.unquote(trust))
            self.assertEqual(trust["Statement"], [{
                "Sid": "ArcaWithExternalId",
                "Effect": "Allow",
                "Principal": {"AWS": self.principals},
                "Action": "sts:AssumeRole",
                "Condition": {"StringEquals": {"sts:ExternalId": EXTERNAL_ID,
                                               "aws:PrincipalAccount": self.arca_account}},
            }])
            self.assertIn({"Key": "arca:template-version", "Value": self.version}, role.get("Tags", []))

            # Inline policies: exactly one per enabled set, each with exactly its actions,
            # and each statement as the template says, resources and conditions included
            # (TemplateTest checks those conditions one by one).
            names = self.iam.list_role_policies(RoleName=name)["PolicyNames"]
            self.assertEqual(sorted(names), sorted(SETS[s][2] for s in enabled))
            ev = Evaluator(self.t, values, {"AWS::Partition": "aws", "AWS::AccountId": CUSTOMER_ACCOUNT}, {})
            for s in enabled:
                doc = self.iam.get_role_policy(RoleName=name, PolicyName=SETS[s][2])["PolicyDocument"]
                if isinstance(doc, str):
                    doc = json.loads(urllib.parse.unquote(doc))
                self.assertEqual(set(policy_actions(doc)), self.issue[s][0] | BEYOND_ISSUE.get(s, set()), s)
                want = ev.eval(self.t["Resources"][SETS[s][1]]["Properties"]["PolicyDocument"])
                self.assertEqual(doc["Statement"], want["Statement"], s)
                if s == "EKS":
                    named = next(st for st in doc["Statement"] if st["Sid"] == "EksPassNamedRoles")
                    self.assertEqual(named["Resource"], eks_roles.split(",") if eks_roles else
                                     f"arn:aws:iam::{CUSTOMER_ACCOUNT}:role/arca-eks-restore/*")

            # Managed policies: SecurityAudit exactly when security scanning is on.
            want = {f"arn:aws:iam::aws:policy/{m}" for s in enabled for m in self.issue[s][1]}
            attached = {p["PolicyArn"] for p in
                        self.iam.list_attached_role_policies(RoleName=name)["AttachedPolicies"]}
            if self.managed_policy_arns_supported:
                self.assertEqual(attached, want)
            else:
                self.assertLessEqual(attached, want)

            outputs = {o["OutputKey"]: o["OutputValue"] for o in stack["Outputs"]}
            self.assertEqual(outputs, {"RoleArn": role["Arn"], "TemplateVersion": self.version,
                                       "PermissionSets": permission_sets})
            # (moto lists a blank entry for a resource whose condition is false: ignored.)
            resources = {r["LogicalResourceId"] for r in
                         self.cf.list_stack_resources(StackName=name)["StackResourceSummaries"]
                         if r["LogicalResourceId"]}
            self.assertEqual(resources, {"Role"} | {SETS[s][1] for s in enabled},
                             "no ArcaAccountLink without a topic")
        finally:
            self.cf.delete_stack(StackName=name)
        with self.assertRaises(self.iam.exceptions.NoSuchEntityException):
            self.iam.get_role(RoleName=name)

    def test_account_link_waits_for_arca(self):
        """With a service token the stack stays CREATE_IN_PROGRESS until Arca answers.

        moto only delivers custom resources to Lambda functions (never SNS) and cannot run
        them without Docker, so the service token here is a Lambda function of the test's
        and the test answers the ResponseURL itself, as Arca's inventory function will.
        The ResourceProperties are checked in TemplateTest.test_custom_resource_contract.
        """
        name = f"arca-role-test-{self.run_id}-link"
        lam = self.session.client("lambda")
        code = io.BytesIO()
        with zipfile.ZipFile(code, "w") as z:
            z.writestr("index.py", "def handler(event, context):\n    return None\n")
        fn_role = self.iam.create_role(
            RoleName=f"{name}-fn",
            AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [{
                "Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"},
                "Action": "sts:AssumeRole"}]}),
        )["Role"]["Arn"]
        fn = lam.create_function(FunctionName=name, Runtime="python3.12", Role=fn_role,
                                 Handler="index.handler", Code={"ZipFile": code.getvalue()})["FunctionArn"]
        try:
            stack = self.create(name, self.params(name, {}, ArcaNotificationTopicArn=fn,
                                                  ArcaAccountLinkId="link-test"))
            self.assertEqual(stack["StackStatus"], "CREATE_IN_PROGRESS")
            resources = {r["LogicalResourceId"]: r["ResourceType"] for r in
                         self.cf.list_stack_resources(StackName=name)["StackResourceSummaries"]}
            self.assertEqual(resources.get("ArcaAccountLink"), "Custom::ArcaAccountLink")
            self.answer(stack["StackId"], "ArcaAccountLink", "link-test")
            stack = self.cf.describe_stacks(StackName=name)["Stacks"][0]
            self.assertEqual(stack["StackStatus"], "CREATE_COMPLETE")
            self.cf.delete_stack(StackName=name)
            with self.assertRaises(self.iam.exceptions.NoSuchEntityException):
                self.iam.get_role(RoleName=name)
        finally:
            try:
                self.cf.delete_stack(StackName=name)
            finally:
                lam.delete_function(FunctionName=name)
                self.iam.delete_role(RoleName=f"{name}-fn")

    def answer(self, stack_id, logical_id, physical_id):
        """PUT a SUCCESS custom-resource response to moto's ResponseURL, as Arca would."""
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest

        url = (f"{self.endpoint}/cloudformation_{self.region}/cfnresponse?stack="
               f"{urllib.parse.quote(stack_id, safe='')}")
        body = json.dumps({"Status": "SUCCESS", "StackId": stack_id, "RequestId": "test",
                           "LogicalResourceId": logical_id, "PhysicalResourceId": physical_id,
                           "Data": {}}).encode()
        # Signed only so that moto finds the stack in the customer account.
        req = AWSRequest(method="PUT", url=url, data=body, headers={"Content-Type": ""})
        SigV4Auth(self.session.get_credentials().get_frozen_credentials(), "cloudformation",
                  self.region).add_auth(req)
        urllib.request.urlopen(urllib.request.Request(url, data=body, method="PUT",
                                                      headers=dict(req.headers)), timeout=30).read()


if __name__ == "__main__":
    unittest.main()
