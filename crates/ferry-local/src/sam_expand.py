#!/usr/bin/env python3
"""Expand an AWS SAM template (Transform: AWS::Serverless-2016-10-31) into plain
CloudFormation, offline, with aws-sam-translator.

stdin : {"template": {...}, "parameters": {"Name": "value", ...}, "region": "us-east-1"}
stdout: the expanded CloudFormation template (JSON)
exit 0: ok
exit 2: the translator rejected the template; one error message per line on stderr
exit 1: bad input to this script (not JSON, wrong shape)

Or many at once, in one process (the translator's start-up is most of a small template's
time): stdin {"requests": [{"template": ..., "parameters": ...}, ...], "region": ...};
stdout a JSON list with, for each request in order, {"template": <expanded>} or
{"errors": ["...", ...]}; exit 0 unless the input itself is bad (1).

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


class _Refused(Exception):
    """The translator refused a template: one message per line."""

    def __init__(self, lines):
        super().__init__("refused")
        self.lines = [str(line).replace("\n", " ") for line in lines]


def _translate(template, parameters, region):
    """The expanded template, or _Refused."""
    from samtranslator.model.exceptions import ExceptionWithMessage, InvalidDocumentException
    from samtranslator.translator.transform import transform

    if not isinstance(template, dict) or not isinstance(parameters, dict):
        raise _Refused(["bad input: template and parameters must be objects"])
    # AWS::Serverless::Application with a SAR Location would call serverlessrepo.
    for lid, res in (template.get("Resources") or {}).items():
        if (isinstance(res, dict) and res.get("Type") == "AWS::Serverless::Application"
                and isinstance((res.get("Properties") or {}).get("Location"), dict)):
            raise _Refused([f"Resource with id [{lid}] is invalid. Serverless Application Repository "
                            "applications (Location with ApplicationId) cannot be expanded offline."])

    params = {str(k): v for k, v in parameters.items()}
    params.setdefault("AWS::Region", region)
    loader = OfflineManagedPolicyLoader()
    try:
        # transform() mutates its inputs: give it copies.
        out = transform(copy.deepcopy(template), params, loader)
    except InvalidDocumentException as e:
        raise _Refused([c.message for c in e.causes] or [e.message])
    except ExceptionWithMessage as e:
        raise _Refused([e.message])
    except Exception as e:  # noqa: BLE001 - translator crash on odd input
        raise _Refused([f"SAM translator failed: {type(e).__name__}: {e}"])
    if loader.unknown:
        raise _Refused([f"Unknown AWS managed policy name '{n}' in Policies (not in the policy list bundled "
                        "with aws-sam-translator; use a full policy ARN)" for n in loader.unknown])
    return out


def main():
    try:
        req = json.load(sys.stdin)
        region = req.get("region") or "us-east-1"
        many = req.get("requests")
        if not isinstance(region, str):
            raise TypeError("region must be a string")
        if many is None:
            requests = [{"template": req["template"], "parameters": req.get("parameters") or {}}]
        elif isinstance(many, list):
            requests = many
        else:
            raise TypeError("requests must be a list")
        if many is None and not isinstance(requests[0]["template"], dict):
            raise TypeError("template and parameters must be objects, region a string")
        if many is None and not isinstance(requests[0]["parameters"], dict):
            raise TypeError("template and parameters must be objects, region a string")
    except Exception as e:  # noqa: BLE001
        _fail(1, [f"bad input: {type(e).__name__}: {e}"])

    _isolate_from_aws(region)

    # Anything the translator might print must not corrupt the JSON on stdout.
    real_stdout = sys.stdout
    sys.stdout = sys.stderr
    results = []
    try:
        for r in requests:
            try:
                if not isinstance(r, dict):
                    raise _Refused(["bad input: a request must be an object"])
                out = _translate(r.get("template"), r.get("parameters") or {}, region)
                results.append({"template": out})
            except _Refused as e:
                if many is None:
                    _fail(2, e.lines)
                results.append({"errors": e.lines})
    finally:
        sys.stdout = real_stdout

    json.dump(results[0]["template"] if many is None else results, sys.stdout, indent=1, sort_keys=False)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
