"""The examples of README.md and CONTRIBUTING.md, run as written where they can run here.

Every fenced code block says in its info string how it is tested (CONTRIBUTING.md, "Documentation tests"):

* ``sh``: run with ``bash -euo pipefail`` in a scratch directory, against a fresh emulator;
* ``sh server``: a command that prints its URL and runs until Ctrl-C: started, asked a question, then stopped
  with SIGINT;
* ``python``: run as a script with the AWS SDKs pointed at a fresh emulator;
* ``python program``: a Pulumi program, run under ``pulumi.runtime.set_mocks`` (no engine), whose
  kms-connection resources then go through the real provider server (``seam/engine.py``) against an emulator
  that holds every store id the block names: a preview, and an ``up``;
* ``yaml stack-config``: a ``Pulumi.<stack>.yaml`` for the stack program, which runs under mocks with it;
* ``yaml``, ``json``: parsed; ``text``: output, not run;
* ``LANG no-run: REASON``: not run, and the reason is required.

Blocks that show the emulator's default port, 4599, get a free port instead, so a test run never competes with a
running ``scripts/up``. Python programs run under mocks rather than through the CLI: the mocks run the block
itself (imports, constructor keywords, its Python), and the provider server then checks, previews and converges
exactly the inputs it registered, in seconds; ``tests/cli/`` covers the engine around them.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml

from kms_connection.emulator import Emulator
from kms_connection.emulator.model import error_code_store_types
from kms_connection.emulator.store import CLOUDHSM, EXTERNAL
from kms_connection.errors import API_ERROR_REMEDIES, ConnectFailedError
from kms_connection.states import CONNECTION_ERROR_REMEDIES
from seam.engine import (
    PROJECT_ROOT,
    UNKNOWN,
    ProviderServer,
    Registration,
    Stack,
    capture_registrations,
    unwrap_secrets,
)
from tests.lifecycle_fixtures import MUTATING, provider_env

DOCS = ("README.md", "CONTRIBUTING.md")
KMS_TYPES = (
    "pulumi-python:dynamic/kms:CustomKeyStoreConnection",
    "pulumi-python:dynamic/kms:CustomKeyStoreConnectionSet",
)
STACK_PROGRAM = PROJECT_ROOT / "__main__.py"
DEFAULT_PORT = "4599"

# What each info string means; a block with any other is an error (test_every_block_says_how_it_is_tested).
RUN, SERVER, PROGRAM, STACK_CONFIG, PARSE, OUTPUT, NO_RUN = (
    "run", "server", "program", "stack-config", "parse", "output", "no-run"
)
KINDS: dict[tuple[str, str], str] = {
    ("sh", ""): RUN,
    ("sh", "server"): SERVER,
    ("python", ""): RUN,
    ("python", "program"): PROGRAM,
    ("yaml", "stack-config"): STACK_CONFIG,
    ("yaml", ""): PARSE,
    ("json", ""): PARSE,
    ("text", ""): OUTPUT,
}

# The config the README's program blocks read, as its `pulumi config set` lines set it.
PROGRAM_CONFIG = {
    "aws:region": "us-east-1",
    "kms-connection:trustAnchorCertificate": "-----BEGIN CERTIFICATE-----\nDOCS-TEST\n-----END CERTIFICATE-----",
    "kms-connection:kmsuserPassword": "docs-test-password",
}
PROGRAM_SECRETS = ("kms-connection:kmsuserPassword",)
# The stack-config block sets this one with `pulumi config set --secret` (its last line says so).
STACK_CONFIG_SECRETS = {"kms-connection:newCloudHsmKeyStorePassword": "docs-test-password"}


@dataclass(frozen=True)
class Block:
    """One fenced code block: where it is, under which heading, its info string and its text (dedented)."""

    doc: str
    line: int
    heading: str
    lang: str
    mode: str
    reason: str
    text: str

    @property
    def kind(self) -> str | None:
        if self.mode == NO_RUN:
            return NO_RUN
        return KINDS.get((self.lang, self.mode))

    def __str__(self) -> str:
        return f"{self.doc}:{self.line}"


FENCE = re.compile(r"^(?P<indent>[ \t]*)```(?P<info>[^`]*)$")
INFO = re.compile(r"^(?P<lang>[\w-]*)(?:[ \t]+(?P<mode>[\w-]+))?(?:[ \t]*:[ \t]*(?P<reason>.*))?$")


def read_blocks(doc: str) -> list[Block]:
    """Every fenced block of ``doc``, with the heading it sits under."""
    lines = (PROJECT_ROOT / doc).read_text().splitlines()
    blocks: list[Block] = []
    heading = ""
    index = 0
    while index < len(lines):
        line = lines[index]
        fence = FENCE.match(line)
        if fence is None:
            if line.startswith("#"):
                heading = line.lstrip("#").strip()
            index += 1
            continue
        start, indent = index + 1, fence["indent"]
        body: list[str] = []
        index += 1
        while index < len(lines) and lines[index].strip() != "```":
            body.append(lines[index].removeprefix(indent))
            index += 1
        info = INFO.match(fence["info"].strip())
        lang, mode, reason = ("?", "", "")
        if info is not None:
            lang, mode, reason = info["lang"], info["mode"] or "", (info["reason"] or "").strip()
        blocks.append(Block(doc, start, heading, lang, mode, reason, "\n".join(body) + "\n"))
        index += 1
    return blocks


ALL_BLOCKS = [block for doc in DOCS for block in read_blocks(doc)]


def blocks_of(*kinds: str) -> list[Block]:
    return [block for block in ALL_BLOCKS if block.kind in kinds]


def params(blocks: list[Block]) -> list[Any]:
    """Blocks as pytest parameters, each named by its file and line."""
    return [pytest.param(block, id=str(block)) for block in blocks]


def table_under(doc: str, heading: str, first_column: str) -> list[list[str]]:
    """The rows (cells stripped) of the table under ``heading`` whose first header cell is ``first_column``;
    the header and its rule left out."""
    lines = (PROJECT_ROOT / doc).read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("#") and line.lstrip("#").strip() == heading)
    tables: list[list[list[str]]] = [[]]
    for line in lines[start + 1 :]:
        if line.startswith("#"):
            break
        if line.startswith("|"):
            tables[-1].append([cell.strip() for cell in line.strip().strip("|").split(" | ")])
        elif tables[-1]:
            tables.append([])
    table = next(rows for rows in tables if rows and rows[0][0] == first_column)
    return table[2:]


def blocks_under(heading: str) -> list[Block]:
    return [block for block in ALL_BLOCKS if block.heading == heading]


# --------------------------------------------------------------------------------------------------
# Environments
# --------------------------------------------------------------------------------------------------


def clean_env(home: Path) -> dict[str, str]:
    """This process's environment without any AWS setting, the project's virtualenv first on PATH, and AWS config
    files that do not exist: a block sets what it needs, as it would on a fresh shell."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("AWS_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.update(
        AWS_CONFIG_FILE=str(home / "aws-config"),
        AWS_SHARED_CREDENTIALS_FILE=str(home / "aws-credentials"),
        AWS_EC2_METADATA_DISABLED="true",
        AWS_PAGER="",
    )
    return env


@pytest.fixture
def scratch(tmp_path: Path) -> Path:
    """A working directory for a block: the seed it may name (``local/seed.json``) and nothing else of ours."""
    work = tmp_path / "work"
    (work / "local").mkdir(parents=True)
    (work / "local" / "seed.json").write_text((PROJECT_ROOT / "local" / "seed.json").read_text())
    return work


def run_checked(command: list[str], cwd: Path, env: dict[str, str], what: Block) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=90, check=False)
    assert result.returncode == 0, (
        f"{what} ({what.heading}) failed with exit status {result.returncode}\n"
        f"--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"
    )
    return result


# --------------------------------------------------------------------------------------------------
# Programs: under mocks, then through the provider server
# --------------------------------------------------------------------------------------------------

STORE_ID = re.compile(r"\bcks-[0-9a-f]{17}\b")


@functools.cache
def registrations_of(program_text: str, config_json: str, secrets: tuple[str, ...]) -> tuple[Registration, ...]:
    """What a program registers under mocks (a fresh interpreter per program; cached, as captures cost a second)."""
    with tempfile.TemporaryDirectory(prefix="docs-program-") as directory:
        program = Path(directory) / "__main__.py"
        program.write_text(program_text)
        return tuple(capture_registrations(program, json.loads(config_json), secret_keys=secrets))


def program_registrations(block: Block) -> list[Registration]:
    return list(registrations_of(block.text, json.dumps(PROGRAM_CONFIG), PROGRAM_SECRETS))


def seed(store_ids: list[str], state: str) -> list[dict[str, Any]]:
    """CloudHSM key stores with these ids, each of its own cluster, in ``state``."""
    return [
        {
            "CustomKeyStoreId": store_id,
            "CustomKeyStoreName": f"docs-{index}",
            "CustomKeyStoreType": "AWS_CLOUDHSM",
            "CloudHsmClusterId": f"cluster-{index:011x}",
            "TrustAnchorCertificate": "-----BEGIN CERTIFICATE-----\nDOCS\n-----END CERTIFICATE-----",
            "ConnectionState": state,
        }
        for index, store_id in enumerate(sorted(set(store_ids)))
    ]


def as_in_a_preview(registrations: list[Registration]) -> list[Registration]:
    """The kms-connection resources, with any input that is another resource's id unknown, as it is in a preview
    of a stack that has not created that resource yet (the mocks made it up)."""
    mock_ids = {f"{r.name}_id" for r in registrations if r.custom and r.type_ not in KMS_TYPES}

    def unknown_ids(value: Any) -> Any:
        if isinstance(value, list):
            return [unknown_ids(item) for item in value]
        return UNKNOWN if isinstance(value, str) and value in mock_ids else value

    return [
        dataclasses.replace(r, inputs={key: unknown_ids(value) for key, value in r.inputs.items()})
        for r in registrations
        if r.type_ in KMS_TYPES
    ]


@pytest.fixture
def provider_stack(tmp_path: Path) -> Iterator[Callable[[Emulator], Stack]]:
    """A provider server configured for a stack in us-east-1 whose `aws:endpoints` name the emulator, as a
    `Stack`; stopped after the test."""
    servers: list[ProviderServer] = []

    def start(emulator: Emulator) -> Stack:
        server = ProviderServer(env=provider_env(None, tmp_path)).start()
        servers.append(server)
        server.configure({"aws:region": "us-east-1", "aws:endpoints": [{"kms": emulator.endpoint_url}]})
        return Stack(server)

    yield start
    for server in servers:
        server.close()


def mutating(emulator: Emulator) -> list[str]:
    return [f"{call.operation} {call.store_id}" for call in emulator.calls if call.operation in MUTATING]


def uses_other_providers(block: Block) -> bool:
    """Whether the program declares resources of another provider (pulumi-aws...), whose plugin is not here."""
    return re.search(r"^\s*(import|from)\s+pulumi_\w+", block.text, re.MULTILINE) is not None


# --------------------------------------------------------------------------------------------------
# Every block
# --------------------------------------------------------------------------------------------------


def test_the_documents_have_runnable_examples() -> None:
    kinds = {block.kind for block in ALL_BLOCKS}
    assert {RUN, SERVER, PROGRAM, STACK_CONFIG} <= kinds, kinds


@pytest.mark.parametrize("block", params(ALL_BLOCKS))
def test_every_block_says_how_it_is_tested(block: Block) -> None:
    assert block.kind is not None, (
        f"{block}: info string {block.lang!r} {block.mode!r} is none of {sorted(KINDS)} or 'LANG no-run: REASON'"
    )
    if block.kind == NO_RUN:
        assert len(block.reason.split()) >= 3, f"{block}: a no-run block says why it cannot run here"
    else:
        assert not block.reason, f"{block}: only a no-run block takes a reason"


@pytest.mark.parametrize("block", params(blocks_of(PARSE, STACK_CONFIG)))
def test_json_and_yaml_blocks_parse(block: Block) -> None:
    if block.lang == "json":
        json.loads(block.text)
    else:
        assert yaml.safe_load(block.text) is not None


# --------------------------------------------------------------------------------------------------
# Shell and Python blocks
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("block", params(blocks_of(RUN)))
def test_shell_and_python_blocks_run_against_the_emulator(
    block: Block, kms_emulator: Emulator, scratch: Path, tmp_path: Path
) -> None:
    env = clean_env(tmp_path)
    text = block.text.replace(f"http://127.0.0.1:{DEFAULT_PORT}", kms_emulator.endpoint_url)
    if block.lang == "sh":
        run_checked(["bash", "-c", f"set -euo pipefail\n{text}"], scratch, env, block)
    else:
        # No shell to export from: the variables a user's shell would have after the README's `export` line.
        env.update(
            AWS_ENDPOINT_URL_KMS=kms_emulator.endpoint_url,
            AWS_ENDPOINT_URL_STS=kms_emulator.endpoint_url,
            AWS_ACCESS_KEY_ID="local",
            AWS_SECRET_ACCESS_KEY="local",
            AWS_DEFAULT_REGION="us-east-1",
        )
        script = tmp_path / "example.py"
        script.write_text(text)
        run_checked([sys.executable, str(script)], scratch, env, block)


@pytest.mark.parametrize("block", params(blocks_of(SERVER)))
def test_server_blocks_print_their_url_answer_and_stop_on_ctrl_c(block: Block, scratch: Path, tmp_path: Path) -> None:
    text = block.text.replace(f"--port {DEFAULT_PORT}", "--port 0")
    log = tmp_path / "stderr.log"
    with log.open("w") as stderr, subprocess.Popen(
        ["bash", "-c", text], cwd=scratch, env=clean_env(tmp_path), stdout=subprocess.PIPE, stderr=stderr, text=True,
        start_new_session=True,
    ) as process:
        try:
            assert process.stdout is not None
            url = process.stdout.readline().strip()
            assert url.startswith("http://127.0.0.1:"), f"{block}: printed {url!r}, not its URL; {log.read_text()}"
            kms = boto3.client(
                "kms", endpoint_url=url, region_name="us-east-1", aws_access_key_id="local",
                aws_secret_access_key="local",
            )
            assert kms.describe_custom_key_stores()["CustomKeyStores"], f"{block}: the seeded stores are missing"
            os.killpg(process.pid, signal.SIGINT)  # Ctrl-C reaches the terminal's whole foreground process group
            assert process.wait(timeout=15) == 0, log.read_text()
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)


# --------------------------------------------------------------------------------------------------
# Pulumi programs and stack config
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("block", params(blocks_of(PROGRAM)))
def test_program_blocks_pass_check_and_preview_without_changing_a_store(
    block: Block, make_emulator: Callable[..., Emulator], provider_stack: Callable[[Emulator], Stack]
) -> None:
    resources = as_in_a_preview(program_registrations(block))
    assert resources, f"{block}: declares no kms-connection resource"
    emulator = make_emulator(seed=seed(STORE_ID.findall(block.text), "DISCONNECTED"))
    stack = provider_stack(emulator)

    for resource in resources:
        step = stack.preview(resource)  # a check failure raises, naming the input and the reason
        assert step.op == "create"

    assert mutating(emulator) == []


@pytest.mark.parametrize("block", params([b for b in blocks_of(PROGRAM) if not uses_other_providers(b)]))
def test_program_blocks_converge_their_stores_in_up(
    block: Block, make_emulator: Callable[..., Emulator], provider_stack: Callable[[Emulator], Stack]
) -> None:
    resources = as_in_a_preview(program_registrations(block))
    emulator = make_emulator(seed=seed(STORE_ID.findall(block.text), "DISCONNECTED"))
    stack = provider_stack(emulator)

    results = stack.up_all(resources)

    for result in results:
        assert result.new is not None and result.check is not None
        desired = result.check.inputs["desired_state"]
        outputs = unwrap_secrets(result.new.outputs)
        states = outputs.get("connection_states") or {outputs["custom_key_store_id"]: outputs["connection_state"]}
        assert states and set(states.values()) == {desired}, f"{block}: {result.urn} ended {states}"
        assert {emulator.state_of(store_id) for store_id in states} == {desired}


@pytest.mark.parametrize("block", params(blocks_of(STACK_CONFIG)))
def test_stack_config_blocks_run_the_stack_program(block: Block, monkeypatch: pytest.MonkeyPatch) -> None:
    # The program refuses pulumi-aws resources where plugins cannot be downloaded (scripts/pulumi's setting).
    monkeypatch.delenv("PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION", raising=False)
    config = {**yaml.safe_load(block.text)["config"], **STACK_CONFIG_SECRETS}

    registrations = capture_registrations(STACK_PROGRAM, config, secret_keys=STACK_CONFIG_SECRETS)

    names = {r.name for r in registrations if r.type_ in KMS_TYPES}
    declared = {entry.get("name", entry.get("id")) for entry in config.get("kms-connection:keyStores", [])}
    declared |= {entry["name"] for entry in config.get("kms-connection:keyStoreSets", [])}
    if "kms-connection:newCloudHsmKeyStore" in config:
        declared.add(f"{config['kms-connection:newCloudHsmKeyStore']['name']}-connection")
    assert names == declared


# --------------------------------------------------------------------------------------------------
# What the README shows and says, against what the code does
# --------------------------------------------------------------------------------------------------

ADOPTION = "Adopting stores from a hand-written script"
TROUBLESHOOTING_FAILED = "A connect that ends `FAILED`"


def test_the_adoption_preview_prints_the_lines_the_readme_shows_and_no_other(
    make_emulator: Callable[..., Emulator], provider_stack: Callable[[Emulator], Stack]
) -> None:
    program = next(b for b in blocks_under(ADOPTION) if b.kind == PROGRAM)
    shown = [line for b in blocks_under(ADOPTION) if b.kind == OUTPUT for line in b.text.splitlines() if line]
    assert shown, f"no output block under {ADOPTION!r}"
    # As the README tells it: the script keeps every store connected.
    store_ids = STORE_ID.findall(program.text)
    emulator = make_emulator(seed=seed(store_ids, "CONNECTED"))
    stack = provider_stack(emulator)

    for resource in as_in_a_preview(program_registrations(program)):
        stack.preview(resource)

    printed = [line.rstrip() for line in stack.server.stderr_lines()]
    for line in shown:
        assert line in printed, f"{line!r} is not a line the preview printed: {printed}"
    quiet = [store_id for store_id in store_ids if not any(store_id in line for line in shown)]
    assert quiet and not [out for out in printed for store_id in quiet if store_id in out]
    assert mutating(emulator) == []


def test_the_troubleshooting_output_shows_the_error_the_code_raises_today() -> None:
    output = next(b for b in blocks_under(TROUBLESHOOTING_FAILED) if b.kind == OUTPUT).text
    error = "error: " + str(ConnectFailedError("cks-0123456789abcdef0", "us-east-1", "USER_LOCKED_OUT"))
    shown = [line for line in output.splitlines() if "error: custom key store" in line]

    assert shown and all(line.endswith(error) for line in shown), shown
    assert output.index(error) < output.index("Provider traceback")


def test_the_error_code_table_gives_each_code_its_store_types_and_remedy() -> None:
    words = {
        frozenset({CLOUDHSM, EXTERNAL}): "both",
        frozenset({CLOUDHSM}): "CloudHSM",
        frozenset({EXTERNAL}): "external",
    }
    rows = table_under("README.md", "CloudHSM and external key stores", "`ConnectionErrorCode`")
    table = {code.strip("`"): (types, remedy) for code, types, remedy in rows}

    assert table == {
        code: (words[error_code_store_types(code)], remedy) for code, remedy in CONNECTION_ERROR_REMEDIES.items()
    }


def test_the_kms_error_table_gives_the_fix_each_error_message_gives() -> None:
    rows = table_under("README.md", "KMS errors and what to do", "KMS error")

    assert {error.strip("`"): fix for error, fix in rows} == API_ERROR_REMEDIES
