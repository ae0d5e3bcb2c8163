"""Expands the SAM template offline, as CloudFormation's transform would.

    python3 scripts/sam-expand.py template.yaml expanded.json

Run with the deploy tools' virtualenv (samtranslator; `scripts/deploy-checks.sh tools`).
scripts/deploy-checks.sh lints the result and scripts/lambda-e2e.sh reads the functions'
environment, schedules and event source mappings from it.
"""

import json
import sys

from samtranslator.public.translator import ManagedPolicyLoader
from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse


class Offline(ManagedPolicyLoader):
    """No IAM calls: the template names no managed policy."""

    def __init__(self):
        pass

    def load(self):
        return {}


template = yaml_parse(open(sys.argv[1]).read())
for resource in template["Resources"].values():
    if resource["Type"] == "AWS::Serverless::Function":
        # sam deploy puts the built zip here; the transform wants an S3 location.
        resource["Properties"]["CodeUri"] = "s3://arca-deploy-checks/function.zip"
json.dump(transform(template, {"AWS::Region": "us-east-1"}, Offline()), open(sys.argv[2], "w"), indent=1)
