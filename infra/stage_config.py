"""Point a Chalice stage at its deployed infra stack.

Writes the stack's outputs into the stage's `environment_variables` in .chalice/config.json,
and the stack's account and region into the ARNs of .chalice/policy-<stage>.json. The
committed files use the placeholders 123456789012 / us-east-1; run this once per stage after
`aws cloudformation deploy` of infra/template.yaml (infra/README.md):

    .venv/bin/python infra/stage_config.py prod --stack jobgate-prod-infra --region eu-west-1

Needs AWS credentials that may call cloudformation:DescribeStacks. `--check` changes nothing
and exits 1 when the files do not match the stack.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
ENV_OUTPUTS = {
    "JOBGATE_TABLE": "TableName", "JOBGATE_BUCKET": "BucketName",
    "JOBGATE_JOBS_QUEUE_URL": "JobsQueueUrl", "JOBGATE_JOBS_DLQ_URL": "JobsDlqUrl",
    "JOBGATE_CALLBACKS_QUEUE_URL": "CallbacksQueueUrl", "JOBGATE_CALLBACKS_DLQ_URL": "CallbacksDlqUrl",
    "JOBGATE_CURSOR_SECRET_ID": "CursorSecretName",  # its name: the value stays in the stack
}


def stage_files(project: Path, stage: str) -> tuple[Path, Path]:
    return project / ".chalice" / "config.json", project / ".chalice" / f"policy-{stage}.json"


def updated(project: Path, stage: str, outputs: dict[str, str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(config, policy) as they must be for the stack with these outputs."""
    config_path, policy_path = stage_files(project, stage)
    config = json.loads(config_path.read_text())
    policy = json.loads(policy_path.read_text())
    env = config["stages"][stage]["environment_variables"]
    old_bucket, new_bucket = env.get("JOBGATE_BUCKET", ""), outputs["BucketName"]
    env["JOBGATE_STAGE"] = stage
    env.update({var: outputs[out] for var, out in ENV_OUTPUTS.items()})
    # arn:<partition>:dynamodb:<region>:<account>:table/...
    partition, _, region, account = outputs["TableArn"].split(":")[1:5]

    def retarget(arn: str) -> str:
        parts = arn.split(":", 5)
        if parts[2] == "s3":  # no region or account in S3 ARNs, but the bucket name has both
            name, sep, rest = parts[5].partition("/")
            parts[5] = (new_bucket if name == old_bucket else name) + sep + rest
        else:
            parts[3], parts[4] = region, account
        parts[1] = partition
        return ":".join(parts)

    for statement in policy["Statement"]:
        statement["Resource"] = [retarget(arn) for arn in statement["Resource"]]
    return config, policy


def stack_outputs(stack: str, region: str | None) -> dict[str, str]:
    import boto3

    cf = boto3.client("cloudformation", region_name=region)
    desc = cf.describe_stacks(StackName=stack)["Stacks"][0]
    return {o["OutputKey"]: o["OutputValue"] for o in desc.get("Outputs", [])}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("stage", choices=["dev", "prod"])
    parser.add_argument("--stack", help="infra stack name (default jobgate-<stage>-infra)")
    parser.add_argument("--region", help="the stack's region (default: your AWS CLI/SDK default)")
    parser.add_argument("--check", action="store_true", help="only compare; exit 1 on a mismatch")
    args = parser.parse_args(argv)
    outputs = stack_outputs(args.stack or f"jobgate-{args.stage}-infra", args.region)
    config, policy = updated(ROOT, args.stage, outputs)
    config_path, policy_path = stage_files(ROOT, args.stage)
    changed = [p for p, new in ((config_path, config), (policy_path, policy))
               if json.loads(p.read_text()) != new]
    if args.check:
        for p in changed:
            print(f"{p.relative_to(ROOT)} does not match the stack", file=sys.stderr)
        return 1 if changed else 0
    for p, new in ((config_path, config), (policy_path, policy)):
        if p in changed:
            p.write_text(json.dumps(new, indent=2) + "\n")
            print(f"updated {p.relative_to(ROOT)}")
    if not changed:
        print("already up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
