"""What gets deployed (issue 5): infra/template.yaml, .chalice/config.json with the stage
policies, and `chalice package` with infra/chalice-merge.json.

The template is linted, checked against what the code expects, and deployed into moto's
CloudFormation, where a job runs end to end on the resources the stack created. A full job
lifecycle is recorded call by call and every call is checked against the prod IAM policy.
`chalice package` runs for real (it downloads the Lambda wheels from PyPI when its cache in
.chalice/deployments is cold)."""

from __future__ import annotations

import contextlib
import fnmatch
import http.server
import io
import json
import os
import subprocess
import sys
import threading
import warnings
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "infra" / "template.yaml"
WORKER_TEMPLATE = ROOT / "infra" / "worker-fargate.yaml"
MERGE = ROOT / "infra" / "chalice-merge.json"
CHALICE_DIR = ROOT / ".chalice"
BIN = Path(sys.executable).parent
STAGES = ("dev", "prod")
RETENTION = 14 * 24 * 3600
# queue (after jobgate-<stage>-) -> (the function consuming it, its redrive maxReceiveCount)
QUEUES: dict[str, tuple[str | None, int | None]] = {
    "jobs": ("run_jobs", 10), "jobs-dlq": ("fail_dead_jobs", None),
    "callbacks": ("deliver_callbacks", 100), "callbacks-dlq": ("fail_dead_callbacks", None),
}
QUEUE_OUTPUTS = {"jobs": "JobsQueue", "jobs-dlq": "JobsDlq", "callbacks": "CallbacksQueue",
                 "callbacks-dlq": "CallbacksDlq"}  # stack outputs <name>Url and <name>Arn
ENV_OUTPUTS = {  # config.json environment variable -> stack output
    "JOBGATE_TABLE": "TableName", "JOBGATE_BUCKET": "BucketName",
    "JOBGATE_JOBS_QUEUE_URL": "JobsQueueUrl", "JOBGATE_JOBS_DLQ_URL": "JobsDlqUrl",
    "JOBGATE_CALLBACKS_QUEUE_URL": "CallbacksQueueUrl", "JOBGATE_CALLBACKS_DLQ_URL": "CallbacksDlqUrl",
    "JOBGATE_CURSOR_SECRET_ID": "CursorSecretName",
}
CURSOR_SECRET = "jobgate-{stage}-cursor-secret"  # Secrets Manager adds "-" and 6 random characters
# Packages that must never ride in the Lambda zip (the runtime has boto3; the rest is tooling).
NOT_IN_ZIP = {"boto3", "botocore", "s3transfer", "moto", "pytest", "_pytest", "pluggy", "cfnlint",
              "cfn_lint", "samtranslator", "ruff", "werkzeug", "flask", "responses"}


# -- configuration helpers ---------------------------------------------------------------------

def chalice_config() -> dict[str, Any]:
    return json.loads((CHALICE_DIR / "config.json").read_text())


def stage_policy(stage: str) -> dict[str, Any]:
    return json.loads((CHALICE_DIR / f"policy-{stage}.json").read_text())


def target(stage: str) -> tuple[str, str]:
    """(account, region) the stage's config points at (infra/stage_config.py sets them)."""
    url = urlsplit(chalice_config()["stages"][stage]["environment_variables"]["JOBGATE_JOBS_QUEUE_URL"])
    return url.path.strip("/").split("/")[0], url.hostname.split(".")[1]


ACCOUNT, REGION = target("prod")  # where the moto stack is deployed


def function_settings(stage: str, function: str) -> dict[str, Any]:
    """Chalice's lookup: the function's own entry, then the stage, then the top level."""
    cfg = chalice_config()
    stage_cfg = cfg["stages"][stage]
    own = stage_cfg.get("lambda_functions", {}).get(function, {})
    return {key: own.get(key, stage_cfg.get(key, cfg.get(key)))
            for key in ("lambda_memory_size", "lambda_timeout")}


def function_names(stage: str) -> dict[str, str]:
    """Lambda function names as `chalice deploy` creates them (jobgate-<stage>[-<handler>])."""
    functions = chalice_config()["stages"][stage]["lambda_functions"]
    return {fn: f"jobgate-{stage}" if fn == "api_handler" else f"jobgate-{stage}-{fn}"
            for fn in functions}


def cfn_lint(*paths: Path) -> None:
    proc = subprocess.run(
        [str(BIN / "cfn-lint"), "--non-zero-exit-code", "error", "--format", "parseable",
         *map(str, paths)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"cfn-lint found errors:\n{proc.stdout}{proc.stderr}"


# -- infra/template.yaml, statically -------------------------------------------------------------

@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    from cfnlint.decode import decode

    tpl, problems = decode(str(TEMPLATE))
    assert not problems, problems
    return tpl


def resource(template: dict[str, Any], kind: str, name: dict[str, Any] | str) -> tuple[str, dict]:
    """(logical id, resource) of the one resource of `kind` whose name property is `name`."""
    name_prop = {"AWS::SQS::Queue": "QueueName", "AWS::DynamoDB::Table": "TableName",
                 "AWS::S3::Bucket": "BucketName"}[kind]
    found = [(lid, r) for lid, r in template["Resources"].items()
             if r["Type"] == kind and r["Properties"].get(name_prop) == name]
    assert len(found) == 1, f"expected one {kind} named {name}, found {len(found)}"
    return found[0]


def test_template_has_no_cfn_lint_errors() -> None:
    cfn_lint(TEMPLATE)


def test_table_matches_the_store(template: dict[str, Any]) -> None:
    from localrunner.provision import CLAIM_INDEX, INDEXES, LIST_PROJECTION

    _, table = resource(template, "AWS::DynamoDB::Table", {"Fn::Sub": "jobgate-${Stage}-jobs"})
    props = table["Properties"]
    assert props["BillingMode"] == "PAY_PER_REQUEST"
    assert [(k["AttributeName"], k["KeyType"]) for k in props["KeySchema"]] == [
        ("pk", "HASH"), ("sk", "RANGE")]
    gsis = {g["IndexName"]: ([k["AttributeName"] for k in g["KeySchema"]], g["Projection"])
            for g in props["GlobalSecondaryIndexes"]}
    assert gsis == {**{index: ([pk, "gsk"], LIST_PROJECTION) for index, pk in INDEXES},
                    CLAIM_INDEX["IndexName"]: ([k["AttributeName"] for k in CLAIM_INDEX["KeySchema"]],
                                               CLAIM_INDEX["Projection"])}
    assert props["TimeToLiveSpecification"] == {"AttributeName": "ttl", "Enabled": True}
    assert props["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert props["SSESpecification"]["SSEEnabled"] is True
    assert table["DeletionPolicy"] == table["UpdateReplacePolicy"] == "Retain"


def test_bucket_is_private_tls_only_encrypted_and_expires_nothing_early(
        template: dict[str, Any]) -> None:
    from chalicelib import services
    from chalicelib.blobs import content_key, log_key, result_key
    from chalicelib.settings import Settings

    lid, bucket = resource(template, "AWS::S3::Bucket",
                           {"Fn::Sub": "jobgate-${Stage}-${AWS::AccountId}-${AWS::Region}"})
    props = bucket["Properties"]
    assert bucket["DeletionPolicy"] == bucket["UpdateReplacePolicy"] == "Retain"
    assert all(props["PublicAccessBlockConfiguration"][k] is True for k in (
        "BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets"))
    sse = props["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]
    assert sse["ServerSideEncryptionByDefault"]["SSEAlgorithm"] in ("AES256", "aws:kms")

    rules = [r for r in props["LifecycleConfiguration"]["Rules"] if r["Status"] == "Enabled"]
    expiry = {r["Prefix"]: r["ExpirationInDays"] for r in rules if "ExpirationInDays" in r}
    prefix = {kind: key.split("/", 1)[0] + "/" for kind, key in (
        ("result", result_key("t", "j", "x")), ("log", log_key("t", "j", "x")),
        ("input", content_key("t", "j")))}
    assert expiry == {prefix["result"]: 2, prefix["log"]: 31, prefix["input"]: 31}
    # S3 counts from the object's creation (rounded up to midnight UTC): never before the
    # result's validUntil (completion + result TTL) nor the job's expiresAt (submit + job TTL).
    settings = Settings()
    longest_result_ttl = max([settings.result_ttl_seconds] + [
        s.result_ttl_seconds for s in services.all_services() if s.result_ttl_seconds])
    assert expiry[prefix["result"]] * 86400 > longest_result_ttl
    assert expiry[prefix["log"]] * 86400 > settings.job_ttl_seconds
    assert expiry[prefix["input"]] * 86400 > settings.job_ttl_seconds
    assert any(r.get("AbortIncompleteMultipartUpload") for r in rules)

    policies = [r["Properties"] for r in template["Resources"].values()
                if r["Type"] == "AWS::S3::BucketPolicy" and r["Properties"]["Bucket"] == {"Ref": lid}]
    assert len(policies) == 1
    tls = [s for s in policies[0]["PolicyDocument"]["Statement"]
           if s["Effect"] == "Deny" and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}]
    assert tls and tls[0]["Principal"] == "*" and tls[0]["Action"] == "s3:*"
    assert tls[0]["Resource"] == [{"Fn::GetAtt": [lid, "Arn"]}, {"Fn::Sub": f"${{{lid}.Arn}}/*"}]


def test_queues_keep_messages_14_days_redrive_and_outlast_their_functions(
        template: dict[str, Any]) -> None:
    ids = {q: resource(template, "AWS::SQS::Queue", {"Fn::Sub": f"jobgate-${{Stage}}-{q}"})[0]
           for q in QUEUES}
    for q, (function, max_receives) in QUEUES.items():
        props = template["Resources"][ids[q]]["Properties"]
        assert props["MessageRetentionPeriod"] == RETENTION, q
        assert props.get("SqsManagedSseEnabled") is True, q
        if max_receives:
            assert props["RedrivePolicy"] == {"deadLetterTargetArn": {
                "Fn::GetAtt": [ids[f"{q}-dlq"], "Arn"]}, "maxReceiveCount": max_receives}, q
        else:
            assert "RedrivePolicy" not in props, q
        if function:  # AWS: a Lambda source queue's visibility timeout >= 6x the function timeout
            for stage in STAGES:
                timeout = function_settings(stage, function)["lambda_timeout"]
                assert props["VisibilityTimeout"] >= 6 * timeout, (q, stage, timeout)


def test_alarms_watch_dlq_depth_and_message_age(template: dict[str, Any]) -> None:
    watched = set()
    for r in template["Resources"].values():
        if r["Type"] == "AWS::CloudWatch::Alarm" and r["Properties"]["Namespace"] != "Jobgate":
            p = r["Properties"]
            assert p["Namespace"] == "AWS/SQS"
            (dim,) = p["Dimensions"]
            assert dim["Name"] == "QueueName" and dim["Value"]["Fn::GetAtt"][1] == "QueueName"
            watched.add((p["MetricName"], dim["Value"]["Fn::GetAtt"][0]))
    ids = {q: resource(template, "AWS::SQS::Queue", {"Fn::Sub": f"jobgate-${{Stage}}-{q}"})[0]
           for q in QUEUES}
    for q, logical_id in ids.items():
        assert ("ApproximateAgeOfOldestMessage", logical_id) in watched, q
        if q.endswith("-dlq"):
            assert ("ApproximateNumberOfMessagesVisible", logical_id) in watched, q


def test_alarms_watch_the_functions_own_metrics(template: dict[str, Any]) -> None:
    """The EMF metrics chalicelib.telemetry writes, on their deployment-wide series."""
    ours = {r["Properties"]["MetricName"]: r["Properties"] for r in template["Resources"].values()
            if r["Type"] == "AWS::CloudWatch::Alarm" and r["Properties"]["Namespace"] == "Jobgate"}
    assert {"JobsFailed", "CallbacksGivenUp"} <= set(ours)
    for p in ours.values():
        assert p["Dimensions"] == [{"Name": "service", "Value": "jobgate"}]
        assert p["Statistic"] == "Sum"


# -- infra/worker-fargate.yaml: workers on ECS Fargate (issue 13) -------------------------------------

def test_worker_template_has_no_cfn_lint_errors() -> None:
    cfn_lint(WORKER_TEMPLATE)


def test_worker_tasks_hold_no_aws_permission_and_start_with_only_their_key() -> None:
    from cfnlint.decode import decode

    tpl, problems = decode(str(WORKER_TEMPLATE))
    assert not problems, problems
    res = tpl["Resources"]
    (task_def,) = [r["Properties"] for r in res.values() if r["Type"] == "AWS::ECS::TaskDefinition"]
    task_role = res[task_def["TaskRoleArn"]["Fn::GetAtt"][0]]["Properties"]
    assert not {"Policies", "ManagedPolicyArns", "PermissionsBoundary"} & set(task_role)
    assert not [r for r in res.values() if r["Type"] in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy")]
    execution = res[task_def["ExecutionRoleArn"]["Fn::GetAtt"][0]]["Properties"]
    statements = [st for p in execution["Policies"] for st in p["PolicyDocument"]["Statement"]]
    assert statements == [{"Effect": "Allow", "Action": "secretsmanager:GetSecretValue",
                           "Resource": {"Ref": "WorkerKeySecretArn"}}]
    (container,) = task_def["ContainerDefinitions"]
    assert container["Secrets"] == [{"Name": "JOBGATE_WORKER_KEY",
                                     "ValueFrom": {"Ref": "WorkerKeySecretArn"}}]
    assert "JOBGATE_WORKER_KEY" not in {e["Name"] for e in container["Environment"]}
    assert container["Command"][:2] == ["jobgate", "worker"]
    # ECS kills the task StopTimeout s after SIGTERM: the grace plus the final reports fit
    assert container["StopTimeout"] >= tpl["Parameters"]["GraceSeconds"]["MaxValue"] + 15


def test_workers_scale_on_the_jobs_waiting_metric() -> None:
    from cfnlint.decode import decode

    tpl, _ = decode(str(WORKER_TEMPLATE))
    res = tpl["Resources"]
    alarms = [r["Properties"] for r in res.values() if r["Type"] == "AWS::CloudWatch::Alarm"]
    assert len(alarms) == 2
    policies = {lid for lid, r in res.items() if r["Type"] == "AWS::ApplicationAutoScaling::ScalingPolicy"}
    for alarm in alarms:
        assert (alarm["Namespace"], alarm["MetricName"]) == ("Jobgate", "WorkerJobsWaiting")
        assert alarm["Dimensions"] == [{"Name": "Service", "Value": {"Ref": "JobService"}},
                                       {"Name": "Stage", "Value": {"Ref": "Stage"}}]
        assert [a["Ref"] for a in alarm["AlarmActions"]] and \
            {a["Ref"] for a in alarm["AlarmActions"]} <= policies
    assert {a["ComparisonOperator"] for a in alarms} == {"GreaterThanOrEqualToThreshold",
                                                         "LessThanThreshold"}


def test_the_cursor_secret_is_random_per_stage_and_only_readable(template: dict[str, Any]) -> None:
    """Issue 11 item 7: generated by the stack, never derived from public names; the
    functions may read that one secret and nothing else of Secrets Manager."""
    (secret,) = [r["Properties"] for r in template["Resources"].values()
                 if r["Type"] == "AWS::SecretsManager::Secret"]
    assert secret["Name"] == {"Fn::Sub": CURSOR_SECRET.format(stage="${Stage}")}
    generated = secret["GenerateSecretString"]
    assert generated["PasswordLength"] >= 32 and "SecretStringTemplate" not in generated
    assert "SecretString" not in secret
    assert template["Outputs"]["CursorSecretName"]["Value"] == secret["Name"]
    for stage in STAGES:
        account, region = target(stage)
        grants = [(a, r) for st in stage_policy(stage)["Statement"] for a in st["Action"]
                  for r in st["Resource"] if a.startswith("secretsmanager:")]
        assert grants == [("secretsmanager:GetSecretValue", f"arn:aws:secretsmanager:{region}:"
                           f"{account}:secret:{CURSOR_SECRET.format(stage=stage)}-??????")]


# -- .chalice/config.json and the stage policies ----------------------------------------------------

@pytest.mark.parametrize("stage", STAGES)
def test_stage_config_follows_the_naming_convention(stage: str) -> None:
    cfg = chalice_config()
    assert (cfg["version"], cfg["app_name"]) == ("2.0", "jobgate")
    st = cfg["stages"][stage]
    assert st["api_gateway_stage"] == "api"
    assert st["autogen_policy"] is False and st["iam_policy_file"] == f"policy-{stage}.json"
    account, region = target(stage)
    sqs = f"https://sqs.{region}.amazonaws.com/{account}/jobgate-{stage}"
    assert st["environment_variables"] == {
        "JOBGATE_STAGE": stage, "JOBGATE_TABLE": f"jobgate-{stage}-jobs",
        "JOBGATE_BUCKET": f"jobgate-{stage}-{account}-{region}",
        "JOBGATE_JOBS_QUEUE_URL": f"{sqs}-jobs", "JOBGATE_JOBS_DLQ_URL": f"{sqs}-jobs-dlq",
        "JOBGATE_CALLBACKS_QUEUE_URL": f"{sqs}-callbacks",
        "JOBGATE_CALLBACKS_DLQ_URL": f"{sqs}-callbacks-dlq",
        "JOBGATE_CURSOR_SECRET_ID": CURSOR_SECRET.format(stage=stage),
    }


def test_policies_are_scoped_to_their_stage_and_never_to_everything() -> None:
    def generic(stage: str) -> str:
        account, region = target(stage)
        return json.dumps(stage_policy(stage)).replace(f"jobgate-{stage}-{account}-{region}", "BUCKET") \
            .replace(f":{region}:{account}:", ":REGION:ACCOUNT:").replace(f"jobgate-{stage}", "jobgate-STAGE")

    assert generic("dev") == generic("prod")
    for stage in STAGES:
        account, region = target(stage)
        for st in stage_policy(stage)["Statement"]:
            assert st["Effect"] == "Allow" and set(st) == {"Sid", "Effect", "Action", "Resource"}, st
            assert all("*" not in a for a in st["Action"]), st
            for arn in st["Resource"]:
                assert arn != "*" and f"jobgate-{stage}" in arn, arn
                if not arn.startswith("arn:aws:s3:::"):  # S3 ARNs carry no region or account
                    assert fnmatch.fnmatchcase(arn, f"arn:aws:*:{region}:{account}:*"), arn


# -- chalice package ------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def packaged(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """`make package` for both stages, into temporary directories."""
    out = {}
    for stage in STAGES:
        dest = tmp_path_factory.mktemp(f"package-{stage}")
        env = {**os.environ, "AWS_DEFAULT_REGION": REGION, "JOBGATE_STAGE": stage}
        env.pop("JOBGATE_QUEUE_PREFIX", None)
        proc = subprocess.run(
            [str(BIN / "chalice"), "--project-dir", str(ROOT), "package", "--stage", stage,
             "--merge-template", str(MERGE), str(dest)],
            capture_output=True, text=True, env=env, timeout=600)
        assert proc.returncode == 0, f"chalice package failed:\n{proc.stdout}{proc.stderr}"
        out[stage] = dest
    return out


def sam(packaged: dict[str, Path], stage: str) -> dict[str, Any]:
    return json.loads((packaged[stage] / "sam.json").read_text())


def functions(tpl: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Packaged functions by chalice handler name (app.app is the API handler)."""
    out = {}
    for r in tpl["Resources"].values():
        if r["Type"] == "AWS::Serverless::Function":
            handler = r["Properties"]["Handler"].split(".", 1)[1]
            out["api_handler" if handler == "app" else handler] = r["Properties"]
    return out


@pytest.mark.parametrize("stage", STAGES)
def test_api_gateways_own_errors_keep_our_error_body(packaged: dict[str, Path], stage: str) -> None:
    """Unknown routes and API Gateway's own 4xx/5xx answer {"error": {...}}, not its format."""
    tpl = sam(packaged, stage)
    responses = {r["Properties"]["ResponseType"]: r["Properties"] for r in tpl["Resources"].values()
                 if r["Type"] == "AWS::ApiGateway::GatewayResponse"}
    assert set(responses) == {"MISSING_AUTHENTICATION_TOKEN", "DEFAULT_4XX", "DEFAULT_5XX"}
    assert responses["MISSING_AUTHENTICATION_TOKEN"]["StatusCode"] == "404"
    assert responses["DEFAULT_5XX"]["ResponseParameters"]["gatewayresponse.header.Retry-After"]
    for p in responses.values():
        assert p["RestApiId"] == {"Ref": "RestAPI"} and "RestAPI" in tpl["Resources"]
        template = p["ResponseTemplates"]["application/json"]
        rendered = template.replace("$context.error.messageString", '"Missing Authentication Token"')
        error = json.loads(rendered)["error"]
        assert set(error) == {"code", "message", "details"}


@pytest.mark.parametrize("stage", STAGES)
def test_package_hands_unknown_paths_and_every_method_to_the_app(
        packaged: dict[str, Path], stage: str) -> None:
    """So `chalice deploy` (no gateway responses) answers our 404/405 bodies too: a greedy
    /{proxy+} resource, and every method on every known path, all integrated with Lambda."""
    tpl = sam(packaged, stage)
    api = next(r for r in tpl["Resources"].values() if r["Type"] == "AWS::Serverless::Api")
    paths = api["Properties"]["DefinitionBody"]["paths"]
    assert "/{proxy+}" in paths and "/" in paths and "/v1/jobs/{jobId}" in paths
    for path, item in paths.items():
        methods = {m for m in item if m != "parameters"}
        assert methods >= {"get", "post", "put", "patch", "delete", "head", "options"}, path
        for op in (item[m] for m in methods):
            assert op["x-amazon-apigateway-integration"]["type"] == "aws_proxy", path


@pytest.mark.parametrize("stage", STAGES)
def test_package_reports_batch_item_failures_on_every_sqs_event_source(
        packaged: dict[str, Path], stage: str) -> None:
    tpl = sam(packaged, stage)
    for logical_id, r in tpl["Resources"].items():
        assert "Type" in r, f"infra/chalice-merge.json names {logical_id}, which chalice no longer emits"
    sources = {}
    for name, props in functions(tpl).items():
        for event in props.get("Events", {}).values():
            if event["Type"] != "SQS":
                continue
            p = event["Properties"]
            assert p.get("FunctionResponseTypes") == ["ReportBatchItemFailures"], name
            # The merge must leave chalice's queue alone: one intrinsic, the stage's queue.
            assert list(p["Queue"]) == ["Fn::Sub"], p["Queue"]
            prefix, queue = p["Queue"]["Fn::Sub"].rsplit(":", 1)
            assert prefix == "arn:${AWS::Partition}:sqs:${AWS::Region}:${AWS::AccountId}"
            sources[queue] = name
    assert sources == {f"jobgate-{stage}-{q}": fn for q, (fn, _) in QUEUES.items() if fn}


@pytest.mark.parametrize("stage", STAGES)
def test_package_has_no_cfn_lint_errors(packaged: dict[str, Path], stage: str) -> None:
    cfn_lint(packaged[stage] / "sam.json")


@pytest.mark.parametrize("stage", STAGES)
def test_package_applies_the_stage_config_and_policy(packaged: dict[str, Path], stage: str) -> None:
    tpl = sam(packaged, stage)
    cfg = chalice_config()["stages"][stage]
    fns = functions(tpl)
    assert set(fns) == set(cfg["lambda_functions"]), "size every function in config.json"
    for name, props in fns.items():
        want = function_settings(stage, name)
        assert (props["MemorySize"], props["Timeout"]) == (
            want["lambda_memory_size"], want["lambda_timeout"]), name
        assert props["Environment"]["Variables"] == cfg["environment_variables"], name
        role = tpl["Resources"][props["Role"]["Fn::GetAtt"][0]]["Properties"]
        assert [p["PolicyDocument"] for p in role["Policies"]] == [stage_policy(stage)], name
        assert not role.get("ManagedPolicyArns"), name


def test_package_zip_carries_runtime_dependencies_only(packaged: dict[str, Path]) -> None:
    zpath = packaged["prod"] / "deployment.zip"
    with zipfile.ZipFile(zpath) as z:
        infos = z.infolist()
    names = [i.filename for i in infos]
    tops = {n.split("/", 1)[0].split("-", 1)[0].removesuffix(".py").lower() for n in names}
    assert not tops & NOT_IN_ZIP, sorted(tops & NOT_IN_ZIP)
    assert "app.py" in names and "chalicelib/runtime.py" in names
    assert {n for n in names if n.startswith("chalice/")} <= {"chalice/__init__.py", "chalice/app.py"}
    size, unzipped = zpath.stat().st_size, sum(i.file_size for i in infos)
    assert size < 50 * 2**20 and unzipped < 250 * 2**20, (size, unzipped)  # Lambda's limits
    requirements = (ROOT / "requirements.txt").read_text().lower()
    for tool in ("boto3", "botocore", "moto", "pytest", "cfn-lint", "ruff", "chalice"):
        assert f"\n{tool}" not in f"\n{requirements}", f"{tool} belongs in requirements-dev.txt"


# -- the stack, deployed into moto ----------------------------------------------------------------

@pytest.fixture
def stack(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """infra/template.yaml deployed as the prod stage, in the account and region the prod
    config names; yields the stack's outputs. moto skips (with a warning) what it cannot
    create: the bucket policy and the alarms."""
    import boto3
    from moto import mock_aws

    monkeypatch.setenv("MOTO_ACCOUNT_ID", ACCOUNT)
    with mock_aws(), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Tried to parse AWS::", category=UserWarning)
        cf = boto3.client("cloudformation", region_name=REGION)
        cf.create_stack(StackName="jobgate-prod-infra", TemplateBody=TEMPLATE.read_text(),
                        Parameters=[{"ParameterKey": "Stage", "ParameterValue": "prod"}])
        desc = cf.describe_stacks(StackName="jobgate-prod-infra")["Stacks"][0]
        assert desc["StackStatus"] == "CREATE_COMPLETE", desc.get("StackStatusReason")
        outputs = {o["OutputKey"]: o["OutputValue"] for o in desc["Outputs"]}
        # moto's CloudFormation skips AWS::SecretsManager::Secret: make it as the stack would.
        sm = boto3.client("secretsmanager", region_name=REGION)
        generated = sm.get_random_password(PasswordLength=64, ExcludePunctuation=True)
        sm.create_secret(Name=outputs["CursorSecretName"],
                         SecretString=generated["RandomPassword"])
        yield outputs


def test_stack_outputs_are_what_the_prod_config_points_at(stack: dict[str, str]) -> None:
    import boto3

    env = chalice_config()["stages"]["prod"]["environment_variables"]
    assert {var: stack[out] for var, out in ENV_OUTPUTS.items()} == {
        var: env[var] for var in ENV_OUTPUTS}
    assert json.loads(stack["ChaliceEnvironment"]) == env

    sqs = boto3.client("sqs", region_name=REGION)
    for q, (function, max_receives) in QUEUES.items():
        url = stack[f"{QUEUE_OUTPUTS[q]}Url"]
        attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        assert attrs["QueueArn"] == f"arn:aws:sqs:{REGION}:{ACCOUNT}:jobgate-prod-{q}"
        assert int(attrs["MessageRetentionPeriod"]) == RETENTION
        if max_receives:
            redrive = json.loads(attrs["RedrivePolicy"])
            assert redrive == {"deadLetterTargetArn": f"{attrs['QueueArn']}-dlq",
                               "maxReceiveCount": max_receives}
        if function:
            timeout = function_settings("prod", function)["lambda_timeout"]
            assert int(attrs["VisibilityTimeout"]) >= 6 * timeout

    table = boto3.client("dynamodb", region_name=REGION).describe_table(
        TableName=stack["TableName"])["Table"]
    assert table["TableArn"] == stack["TableArn"]
    assert {g["IndexName"] for g in table["GlobalSecondaryIndexes"]} == {
        "byTenantShard", "byStatusShard", "byServiceShard", "byClaimable"}


def test_stage_config_tool_writes_the_stacks_outputs(stack: dict[str, str], tmp_path: Path) -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location("stage_config", ROOT / "infra" / "stage_config.py")
    assert spec and spec.loader
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    (tmp_path / ".chalice").mkdir()
    for name in ("config.json", "policy-prod.json"):
        (tmp_path / ".chalice" / name).write_text((CHALICE_DIR / name).read_text())

    config, policy = tool.updated(tmp_path, "prod", stack)
    assert (config, policy) == (chalice_config(), stage_policy("prod"))  # committed = this stack

    account, region = next(t for t in (("210987654321", "eu-west-1"), ("109876543210", "ap-south-1"))
                           if ACCOUNT not in t and REGION not in t)
    other = {k: v.replace(ACCOUNT, account).replace(REGION, region) for k, v in stack.items()}
    config, policy = tool.updated(tmp_path, "prod", other)
    assert config["stages"]["dev"] == chalice_config()["stages"]["dev"]
    env = config["stages"]["prod"]["environment_variables"]
    assert env["JOBGATE_JOBS_QUEUE_URL"] == other["JobsQueueUrl"]
    assert env["JOBGATE_BUCKET"] == other["BucketName"]
    text = json.dumps(policy)
    assert ACCOUNT not in text and REGION not in text and f":{region}:{account}:" in text


class Deployment:
    """The app wired to the stack's resources as a Lambda would be, fed by hand."""

    def __init__(self, outputs: dict[str, str], rt: Any, client: Any, key: str):
        self.outputs, self.rt, self.client, self.key = outputs, rt, client, key
        self.handlers = {"jobs": "run_jobs", "jobs-dlq": "fail_dead_jobs",
                         "callbacks": "deliver_callbacks", "callbacks-dlq": "fail_dead_callbacks"}
        self.urls = {q: outputs[f"{out}Url"] for q, out in QUEUE_OUTPUTS.items()}
        self.arns = {q: outputs[f"{out}Arn"] for q, out in QUEUE_OUTPUTS.items()}

    def request(self, method: str, path: str, body: Any = None, key: str | None = None,
                document: bytes | None = None, content_type: str = "application/json") -> Any:
        headers = {"Authorization": f"Bearer {key or self.key}", "Host": "jobs.example.com"}
        data = document or b""
        if body is not None:
            data = json.dumps(body).encode()
        if data:
            headers["Content-Type"] = content_type
        return self.client.http.request(method=method, path=path, headers=headers, body=data)

    def drain(self, queue: str, rounds: int = 10) -> int:
        """Lambda's event source mapping: receive a batch, invoke, delete what did not fail."""
        import app as app_module
        from localrunner.pollers import LambdaContext, run_batch

        sqs, url, name = self.rt.clients.sqs, self.urls[queue], self.handlers[queue]
        seen = 0
        for _ in range(rounds):
            msgs = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10,
                                       AttributeNames=["All"]).get("Messages", [])
            if not msgs:
                break
            seen += len(msgs)
            run_batch(sqs, url, self.arns[queue], REGION, msgs, app_module.app.handler_map[name],
                      LambdaContext(name))
        return seen


@contextlib.contextmanager
def deployed(outputs: dict[str, str], **settings_env: str) -> Iterator[Deployment]:
    from chalice.test import Client

    import app as app_module
    from chalicelib import runtime
    from chalicelib.connections import create_clients
    from chalicelib.settings import Settings
    from chalicelib.tenants import Tenant

    env = {var: outputs[out] for var, out in ENV_OUTPUTS.items()}
    settings = Settings.from_env({**env, "AWS_DEFAULT_REGION": REGION, **settings_env})
    rt = runtime.build(settings, create_clients(REGION), env)
    rt.tenants.put_tenant(Tenant(name="acme", webhook_secrets=["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"]))
    rt.tenants.add_key("acme", "key-acme-infra-0123456789")
    rt.tenants.put_tenant(Tenant(name="bobco", callback_max_retries=0,
                                 webhook_secrets=["whsec_ZmFrZXNlY3JldGZvcmJvYmNvMTIzNDU2"]))
    rt.tenants.add_key("bobco", "key-bobco-infra-0123456789")
    runtime.set_current(rt)
    try:
        with Client(app_module.app) as client:
            yield Deployment(outputs, rt, client, "key-acme-infra-0123456789")
    finally:
        runtime.set_current(None)


def presigned_object(url: str) -> tuple[str, str]:
    """(bucket, key) of a path-style presigned S3 URL."""
    bucket, _, key = urlsplit(url).path.lstrip("/").partition("/")
    return bucket, unquote(key)


def test_a_job_runs_end_to_end_on_the_stacks_resources(stack: dict[str, str]) -> None:
    with deployed(stack) as d:
        resp = d.request("POST", "/v1/jobs", {"service": "echo", "input": {"hello": "stack"}})
        assert resp.status_code == 202, resp.body
        job_id = json.loads(resp.body)["jobId"]
        assert d.drain("jobs") == 1
        job = json.loads(d.request("GET", f"/v1/jobs/{job_id}").body)
        assert job["status"] == "succeeded", job
        assert job["resultUrl"]

        resp = d.request("GET", f"/v1/jobs/{job_id}/result")
        assert resp.status_code == 303
        bucket, key = presigned_object(resp.headers["Location"])
        assert bucket == stack["BucketName"] and key.startswith("results/")
        s3 = d.rt.clients.s3
        assert json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read()) == {"hello": "stack"}
        items = d.rt.clients.dynamodb.scan(TableName=stack["TableName"])["Items"]
        assert any(job_id in i["pk"]["S"] for i in items)


# -- the prod policy against every call a lifecycle makes -----------------------------------------

def iam_requirements(service: str, op: str, p: dict[str, Any]) -> list[tuple[str, str]] | None:
    """The (IAM action, resource ARN) pairs AWS authorizes for one API call; None if unknown."""
    if service == "dynamodb":
        def table(name: str) -> str:
            return f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{name}"

        if op in ("GetItem", "PutItem", "UpdateItem", "DeleteItem", "Query", "Scan"):
            arn = table(p["TableName"])
            return [(f"dynamodb:{op}", f"{arn}/index/{p['IndexName']}" if "IndexName" in p else arn)]
        if op == "BatchGetItem":  # one GetItem-like action per table read
            return [("dynamodb:BatchGetItem", table(name)) for name in p["RequestItems"]]
        if op == "TransactWriteItems":  # authorized as its parts (DynamoDB developer guide)
            parts = {"Put": "PutItem", "Update": "UpdateItem", "Delete": "DeleteItem",
                     "ConditionCheck": "ConditionCheckItem"}
            return [(f"dynamodb:{parts[kind]}", table(spec["TableName"]))
                    for item in p["TransactItems"] for kind, spec in item.items()]
        return None
    if service == "sqs":
        if op == "GetQueueUrl":
            owner = p.get("QueueOwnerAWSAccountId", ACCOUNT)
            return [("sqs:GetQueueUrl", f"arn:aws:sqs:{REGION}:{owner}:{p['QueueName']}")]
        owner, name = urlsplit(p["QueueUrl"]).path.strip("/").split("/")
        action = op.removesuffix("Batch")  # batch calls use the single action's permission
        if action in ("SendMessage", "ReceiveMessage", "DeleteMessage", "ChangeMessageVisibility",
                      "GetQueueAttributes"):
            return [(f"sqs:{action}", f"arn:aws:sqs:{REGION}:{owner}:{name}")]
        return None
    if service == "secretsmanager" and op == "GetSecretValue":
        secret = p["SecretId"]  # by name: IAM sees the ARN, whose name ends in -<6 random>
        arn = secret if secret.startswith("arn:") else \
            f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:{secret}-Ab12Cd"
        return [("secretsmanager:GetSecretValue", arn)]
    if service == "s3":
        obj = f"arn:aws:s3:::{p.get('Bucket')}/{p.get('Key')}"
        actions = {"GetObject": "s3:GetObject", "HeadObject": "s3:GetObject",
                   "PutObject": "s3:PutObject", "CreateMultipartUpload": "s3:PutObject",
                   "UploadPart": "s3:PutObject", "CompleteMultipartUpload": "s3:PutObject",
                   "AbortMultipartUpload": "s3:AbortMultipartUpload", "DeleteObject": "s3:DeleteObject"}
        if op in actions:
            return [(actions[op], obj)]
        if op == "DeleteObjects":  # authorized per key as s3:DeleteObject
            return [("s3:DeleteObject", f"arn:aws:s3:::{p['Bucket']}/{o['Key']}")
                    for o in p["Delete"]["Objects"]]
        return None
    return None


def allows(policy: dict[str, Any], action: str, arn: str) -> bool:
    return any(st["Effect"] == "Allow"
               and any(fnmatch.fnmatch(action.lower(), a.lower()) for a in st["Action"])
               and any(fnmatch.fnmatchcase(arn, r) for r in st["Resource"])
               for st in policy["Statement"])


class Recorder:
    """Collects the IAM needs of every call made through the runtime's clients. It hooks
    `before-parameter-build` rather than `before-call`: same moment, but it is handed the
    API parameters (TableName, QueueUrl, Bucket/Key) instead of the serialized request."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []
        self.needs: set[tuple[str, str]] = set()
        self.unknown: list[str] = []

    def attach(self, *clients: Any) -> None:
        for client in clients:
            client.meta.events.register("before-parameter-build", self._record)

    def _record(self, params: dict[str, Any], model: Any, **_: Any) -> None:
        service = model.service_model.endpoint_prefix
        self.calls.append((service, model.name))
        needs = iam_requirements(service, model.name, params)
        if needs is None:
            self.unknown.append(f"{service}:{model.name}")
        else:
            self.needs.update(needs)


class _Hooks(http.server.BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(200 if self.path.startswith("/ok") else 500)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def webhook_receiver() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hooks)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def run_lifecycle(d: Deployment, hooks: str) -> list[tuple[str, str]]:
    """Submit → run (success, retry, big log, dead letter, malformed) → webhooks (delivered,
    retried, given up) → read, list, presign → replay → cancel → delete. Returns the extra
    needs of presigned URLs, which are authorized when the client uses them."""
    import boto3

    outside = boto3.client("sqs", region_name=REGION)  # SQS itself, or a stranger: not our role

    def post(body: dict[str, Any], **kw: Any) -> dict[str, Any]:
        resp = d.request("POST", "/v1/jobs", body, **kw)
        assert resp.status_code == 202, resp.body
        return json.loads(resp.body)

    echo = post({"service": "echo", "input": {"n": 1}, "runId": "infra-run-1",
                 "callbackUrl": f"{hooks}/ok"})
    noisy = post({"service": "sleep", "input": {"seconds": 0, "steps": 200}, "logLevel": 3,
                  "callbackUrl": f"{hooks}/fail"})
    post({"service": "sleep", "input": {"seconds": 0, "steps": 1, "fail": True}})
    post({"service": "echo", "input": {}, "callbackUrl": f"{hooks}/fail"},
         key="key-bobco-infra-0123456789")
    csv = "id,value\n" + "".join(f"{i},{i * 7}\n" for i in range(12_000))  # > inline: inputs/
    resp = d.request("POST", "/v1/services/dataload/jobs", document=csv.encode(),
                     content_type="text/csv")
    assert resp.status_code == 202, resp.body
    document = json.loads(resp.body)
    outside.send_message(QueueUrl=d.urls["jobs"], MessageBody="not a job message")
    assert d.drain("jobs") >= 6

    dead = post({"service": "echo", "input": {}})  # its message exhausted its receives:
    msgs = outside.receive_message(QueueUrl=d.urls["jobs"], MaxNumberOfMessages=10)["Messages"]
    for m in msgs:  # redrive by hand, as SQS does after maxReceiveCount
        outside.send_message(QueueUrl=d.urls["jobs-dlq"], MessageBody=m["Body"])
        outside.delete_message(QueueUrl=d.urls["jobs"], ReceiptHandle=m["ReceiptHandle"])
    assert d.drain("jobs-dlq") >= 2
    outside.send_message(QueueUrl=d.urls["callbacks"], MessageBody="not a callback message")
    assert d.drain("callbacks") >= 4
    # A webhook message that exhausted its receives (redriven by hand, as SQS does).
    stuck = post({"service": "echo", "input": {}, "callbackUrl": f"{hooks}/fail"})
    assert d.drain("jobs") >= 1
    msgs = outside.receive_message(QueueUrl=d.urls["callbacks"], MaxNumberOfMessages=10)["Messages"]
    for m in msgs:
        if stuck["jobId"] not in m["Body"]:
            outside.change_message_visibility(QueueUrl=d.urls["callbacks"],
                                              ReceiptHandle=m["ReceiptHandle"], VisibilityTimeout=0)
            continue
        outside.send_message(QueueUrl=d.urls["callbacks-dlq"], MessageBody=m["Body"])
        outside.delete_message(QueueUrl=d.urls["callbacks"], ReceiptHandle=m["ReceiptHandle"])
    assert d.drain("callbacks-dlq") >= 2  # the malformed one is parked, the stuck one settled
    job = json.loads(d.request("GET", f"/v1/jobs/{stuck['jobId']}").body)
    assert job["callback"]["state"] == "failed", job

    presigned = []
    for job_id in (echo["jobId"], noisy["jobId"], dead["jobId"]):
        job = json.loads(d.request("GET", f"/v1/jobs/{job_id}").body)
        if job.get("resultUrl"):  # our link: following it answers 303 to a presigned URL
            link = d.request("GET", "/v1/results/" + job["resultUrl"].rsplit("/", 1)[1])
            assert link.status_code == 303, link.body
            bucket, key = presigned_object(link.headers["Location"])
            presigned.append(("s3:GetObject", f"arn:aws:s3:::{bucket}/{key}"))
    assert json.loads(d.request("GET", f"/v1/jobs/{dead['jobId']}").body)["status"] == "failed"
    resp = d.request("GET", f"/v1/jobs/{echo['jobId']}/result")
    assert resp.status_code == 303
    bucket, key = presigned_object(resp.headers["Location"])
    presigned.append(("s3:GetObject", f"arn:aws:s3:::{bucket}/{key}"))
    assert d.request("GET", f"/v1/jobs/{noisy['jobId']}/log").status_code in (200, 303)
    assert d.request("GET", f"/v1/jobs/{echo['jobId']}/deliveries").status_code == 200
    for query in ("", "?status=succeeded", "?service=sleep", "?status=failed&service=sleep"):
        assert d.request("GET", f"/v1/jobs{query}").status_code == 200
    cursor = json.loads(d.request("GET", "/v1/jobs?limit=1").body)["nextCursor"]  # the stage key
    assert cursor and d.request("GET", f"/v1/jobs?limit=1&cursor={cursor}").status_code == 200

    assert d.request("POST", "/v1/jobs", {"service": "echo", "input": {"n": 1}, "runId": "infra-run-1",
                                          "callbackUrl": f"{hooks}/ok"}).status_code == 200
    assert d.request("POST", f"/v1/jobs/{echo['jobId']}/deliveries").status_code == 202
    queued = post({"service": "echo", "input": {}})
    assert d.request("POST", f"/v1/jobs/{queued['jobId']}/cancel").status_code == 200
    for job_id in (queued["jobId"], echo["jobId"], noisy["jobId"], document["jobId"]):
        assert d.request("DELETE", f"/v1/jobs/{job_id}").status_code == 204

    # A worker job: claimed from the claim index, its result uploaded through the presigned
    # PUT (authorized as the role's s3:PutObject), completed; the watchdog looks at it.
    d.rt.workers.keys.add("jgw_infra-worker-key-0123456789", ["report"])
    report = post({"service": "report", "input": {"steps": 1}})
    resp = d.request("POST", "/v1/worker/claim", {"services": ["report"]},
                     key="jgw_infra-worker-key-0123456789")
    assert resp.status_code == 200, resp.body
    claim = json.loads(resp.body)
    bucket, key = presigned_object(claim["resultUploadUrl"])
    presigned.append(("s3:PutObject", f"arn:aws:s3:::{bucket}/{key}"))
    d.rt.clients.s3.put_object(Bucket=bucket, Key=key, Body=b"done")
    resp = d.request("POST", f"/v1/worker/jobs/{report['jobId']}/complete",
                     {"leaseToken": claim["leaseToken"], "resultUploaded": True},
                     key="jgw_infra-worker-key-0123456789")
    assert resp.status_code == 200, resp.body
    d.drain("jobs")

    # A streamed result (a service returning chunks) goes up as a multipart upload.
    from chalicelib.blobs import result_key

    size = d.rt.blobs.upload(result_key("acme", "01STREAMEDRESULT", "t"),
                             io.BytesIO(b"x" * (9 * 2**20)), "text/csv")
    assert size == 9 * 2**20
    return presigned


# Granted beyond what the lifecycle calls, and why.
JUSTIFIED = {
    "sqs:ReceiveMessage": "Lambda's event source mapping receives with the function's role",
    "sqs:DeleteMessage": "Lambda's event source mapping deletes with the function's role",
    "sqs:GetQueueAttributes": "Lambda's event source mapping reads the queue with the function's role",
    "sqs:GetQueueUrl": "runtime.queue_url looks up a queue missing from the settings",
    "s3:AbortMultipartUpload": "s3transfer aborts a multipart upload that failed",
    "s3:ListBucket": "without it S3 answers 403, not 404 (NoSuchKey), for a missing key (blobs.get)",
    "logs:CreateLogGroup": "the Lambda runtime writes the function's logs with its role",
    "logs:CreateLogStream": "the Lambda runtime writes the function's logs with its role",
    "logs:PutLogEvents": "the Lambda runtime writes the function's logs with its role",
}


def platform_needs(d: Deployment) -> set[tuple[str, str]]:
    """What Lambda does with the execution role on the app's behalf."""
    needs = set()
    for queue in d.handlers:  # the consumed queues
        arn = d.arns[queue]
        needs |= {("sqs:ReceiveMessage", arn), ("sqs:DeleteMessage", arn),
                  ("sqs:GetQueueAttributes", arn)}
    groups = list(function_names("prod").values())  # chalice deploy: jobgate-prod[-<handler>]
    groups += ["jobgate-prod-app-RunJobs-1A2B3C4D5E6F"]  # infra/README.md path (b): stack jobgate-prod-app
    for fn in groups:
        group = f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws/lambda/{fn}"
        needs |= {("logs:CreateLogGroup", group),
                  ("logs:CreateLogStream", f"{group}:log-stream:2026/01/01/[$LATEST]0a1b2c"),
                  ("logs:PutLogEvents", f"{group}:log-stream:2026/01/01/[$LATEST]0a1b2c")}
    return needs


def test_prod_policy_grants_every_call_of_a_full_lifecycle_and_little_more(
        stack: dict[str, str], webhook_receiver: str) -> None:
    policy = stage_policy("prod")
    recorder = Recorder()
    with deployed(stack, JOBGATE_ALLOW_PRIVATE_CALLBACKS="true") as d:
        import boto3

        secret = d.rt.api.cursors.secret  # the stage's secret, read on the first paged listing
        secret.client = boto3.client("secretsmanager", region_name=REGION)
        recorder.attach(d.rt.clients.dynamodb, d.rt.clients.sqs, d.rt.clients.s3, secret.client)
        presigned = run_lifecycle(d, webhook_receiver)
        platform = platform_needs(d)

    assert not recorder.unknown, f"map these calls to IAM actions: {sorted(set(recorder.unknown))}"
    called = {op for _, op in recorder.calls}
    assert {"TransactWriteItems", "Query", "DeleteMessageBatch", "ChangeMessageVisibility",
            "DeleteObjects", "CompleteMultipartUpload"} <= called, sorted(called)
    needs = recorder.needs | set(presigned) | platform
    missing = sorted(n for n in needs if not allows(policy, *n))
    assert not missing, f"the prod policy does not grant: {missing}"

    # Least privilege: every granted (action, resource) is used, or is in JUSTIFIED.
    unused = []
    for st in policy["Statement"]:
        for action in st["Action"]:
            for pattern in st["Resource"]:
                used = any(a.lower() == action.lower() and fnmatch.fnmatchcase(arn, pattern)
                           for a, arn in needs)
                if not used and action not in JUSTIFIED:
                    unused.append((action, pattern))
    assert not unused, f"granted but never used: {unused}"
