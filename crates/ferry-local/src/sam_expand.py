#!/usr/bin/env python3
"""Expand an AWS SAM template (Transform: AWS::Serverless-2016-10-31) into plain
CloudFormation, offline, with aws-sam-translator.

stdin : {"template": {...}, "parameters": {"Name": "value", ...}, "region": "us-east-1"}
stdout: the expanded CloudFormation template (JSON)
exit 0: ok
exit 2: the translator rejected the template; one error message per line on stderr
exit 1: bad input to this script (not JSON, wrong shape)

No AWS call is made: managed policy names are resolved from the map bundled in
aws-sam-translator (samtranslator/internal/data/aws_managed_policies.json), and
an unknown name is reported as an error instead of being looked up in IAM.
"""
import copy
import json
import os
import sys


def _fail(code, lines):
    for line in lines:
        sys.stderr.write(str(line).replace("\n", " ") + "\n")
    sys.stderr.flush()
    sys.exit(code)


def _isolate_from_aws(region):
    # The translator reads the region/partition through boto3.Session(); give it one
    # from the input and keep any local AWS profile/config/credentials out of the way.
    for k in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
              "AWS_SESSION_TOKEN", "AWS_REGION"):
        os.environ.pop(k, None)
    os.environ["AWS_DEFAULT_REGION"] = region
    os.environ["AWS_CONFIG_FILE"] = os.devnull
    os.environ["AWS_SHARED_CREDENTIALS_FILE"] = os.devnull
    os.environ["AWS_EC2_METADATA_DISABLED"] = "true"


class _RecordingMap(dict):
    """Fallback policy map: the translator only consults it for names that are not in the
    bundled map and are not ARNs; every such lookup is an unknown policy name."""

    def __init__(self, unknown):
        super().__init__()
        self._unknown = unknown

    def __bool__(self):  # the translator skips an empty (falsy) map
        return True

    def get(self, name, default=None):
        if name not in self._unknown:
            self._unknown.append(name)
        return default


class OfflineManagedPolicyLoader:
    """Stands in for samtranslator's ManagedPolicyLoader (which calls iam:ListPolicies)."""

    def __init__(self):
        self.unknown = []

    def load(self):
        return _RecordingMap(self.unknown)


def main():
    try:
        req = json.load(sys.stdin)
        template = req["template"]
        parameters = req.get("parameters") or {}
        region = req.get("region") or "us-east-1"
        if not isinstance(template, dict) or not isinstance(parameters, dict) or not isinstance(region, str):
            raise TypeError("template and parameters must be objects, region a string")
    except Exception as e:  # noqa: BLE001
        _fail(1, [f"bad input: {type(e).__name__}: {e}"])

    _isolate_from_aws(region)

    # Anything the translator might print must not corrupt the JSON on stdout.
    real_stdout = sys.stdout
    sys.stdout = sys.stderr
    try:
        from samtranslator.model.exceptions import ExceptionWithMessage, InvalidDocumentException
        from samtranslator.translator.transform import transform

        # AWS::Serverless::Application with a SAR Location would call serverlessrepo.
        for lid, res in (template.get("Resources") or {}).items():
            if (isinstance(res, dict) and res.get("Type") == "AWS::Serverless::Application"
                    and isinstance((res.get("Properties") or {}).get("Location"), dict)):
                _fail(2, [f"Resource with id [{lid}] is invalid. Serverless Application Repository "
                          "applications (Location with ApplicationId) cannot be expanded offline."])

        params = {str(k): v for k, v in parameters.items()}
        params.setdefault("AWS::Region", region)
        loader = OfflineManagedPolicyLoader()
        try:
            # transform() mutates its inputs: give it copies.
            out = transform(copy.deepcopy(template), params, loader)
        except InvalidDocumentException as e:
            _fail(2, [c.message for c in e.causes] or [e.message])
        except ExceptionWithMessage as e:
            _fail(2, [e.message])
        except Exception as e:  # noqa: BLE001 - translator crash on odd input
            _fail(2, [f"SAM translator failed: {type(e).__name__}: {e}"])
        if loader.unknown:
            _fail(2, [f"Unknown AWS managed policy name '{n}' in Policies (not in the policy list bundled "
                      "with aws-sam-translator; use a full policy ARN)" for n in loader.unknown])
    finally:
        sys.stdout = real_stdout

    json.dump(out, sys.stdout, indent=1, sort_keys=False)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
