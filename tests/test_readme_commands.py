"""The README's commands run as written, so the README cannot silently rot.

The command blocks of the quick start, the real-data section and the Sandbox recipe are read from
README.md and checked: every ``dip-cds`` command, subcommand and option exists in the installed CLI,
every file named exists, every ``DIP_CDS_*`` setting loads, every ``curl`` is answered by the real
app (the quick start's hook call with the very card the README quotes), and the real-data imports
run on a fresh data home, after which the service answers from the real catalog as quoted.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import click
import pytest
from click.testing import CliRunner

from cds_service.app import create_app
from cds_service.cli import main
from cds_service.config import load_settings, settings_from_mapping
from hooks.demo_fhir import DEMO_DATA_DIR, FhirStore

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
SHARED = ROOT.parent / "shared"
DIP_CDS = (".venv/bin/dip-cds", "dip-cds")


# ----------------------------------------------------------------------------- reading the README


def section(heading: str) -> str:
    """The text under the heading that starts with ``heading``, up to the next heading of its level."""
    match = re.search(rf"^(#+) {re.escape(heading)}.*$", README, re.MULTILINE)
    assert match, f"README has no section {heading!r}"
    level = len(match.group(1))
    end = re.compile(rf"^#{{1,{level}}} ", re.MULTILINE).search(README, match.end())
    return README[match.end() : end.start() if end else len(README)]


def blocks(text: str, lang: str = "bash") -> list[str]:
    return re.findall(rf"^```{lang}\n(.*?)^```", text, re.MULTILINE | re.DOTALL)


@dataclass
class Command:
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    piped_into: list[str] | None = None  # the command its output goes to (``… | python3 -m json.tool``)


def commands(block: str) -> Iterator[Command]:
    """Shell commands of a block: continuation lines joined, ``&&`` and a trailing ``&`` split,
    leading ``NAME=value`` assignments as env, a pipe as ``piped_into``."""
    for line in block.replace("\\\n", " ").splitlines():
        lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        words, chain = list(lexer), []
        current: list[str] = []
        for word in [*words, "&&"]:
            if word in ("&&", "&", ";"):
                if current:
                    chain.append(current)
                current = []
            else:
                current.append(word)
        for argv in chain:
            pipe = argv.index("|") if "|" in argv else None
            first, rest = (argv[:pipe], argv[pipe + 1 :]) if pipe is not None else (argv, None)
            env = {}
            while first and re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", first[0]):
                name, _, value = first.pop(0).partition("=")
                env[name] = value
            yield Command(first, env, rest)


def inline_curls(text: str) -> list[Command]:
    """``curl …`` written inline in the prose (`` `curl http://…` ``)."""
    return [c for snippet in re.findall(r"`(curl [^`]+)`", text) for c in commands(snippet)]


# ----------------------------------------------------------------------------- checking one command


def check_dip_cds(argv: list[str]) -> None:
    """Every subcommand and option exists; files named as arguments exist."""
    command: click.Command = main
    words = iter(argv[1:])
    for word in words:
        if word.startswith("-"):
            name = word.split("=", 1)[0]
            if name in ("-h", "--help"):
                continue
            options = {o: p for p in command.params if isinstance(p, click.Option) for o in p.opts}
            assert name in options, f"`{' '.join(argv)}`: {command.name} has no option {name}"
            if not (options[name].is_flag or options[name].count or "=" in word):
                next(words)
        elif isinstance(command, click.Group):
            assert word in command.commands, f"`{' '.join(argv)}`: {command.name} has no command {word!r}"
            command = command.commands[word]
        elif "/" in word and not word.startswith("~"):
            check_path(word)


def check_path(path: str) -> None:
    if path.startswith("../shared/") and not SHARED.is_dir():
        return  # the reference data is not on this machine (tests needing it skip)
    assert (ROOT / path).exists(), f"README names {path}, which does not exist"


@dataclass
class Curl:
    method: str
    path: str
    data: bytes | None
    headers: dict[str, str]


def parse_curl(argv: list[str]) -> Curl:
    assert argv[0] == "curl"
    method, url, data, headers = "GET", None, None, {}
    words = iter(argv[1:])
    for word in words:
        if word == "-X":
            method = next(words)
        elif word == "-H":
            name, _, value = next(words).partition(":")
            headers[name.strip()] = value.strip()
        elif word in ("-d", "--data", "--data-binary"):
            value = next(words)
            assert value.startswith("@"), "README curl bodies come from files"
            check_path(value[1:])
            data = (ROOT / value[1:]).read_bytes()
            method = "POST" if method == "GET" else method
        elif word.startswith("http"):
            url = word
        else:
            assert word in ("-s", "-f", "-sf", "-i"), f"unexpected curl option {word}"
    assert url is not None, argv
    split = urlsplit(url)
    assert split.hostname == "127.0.0.1" and split.port == 8080, (
        f"{url}: the README's service is 127.0.0.1:8080"
    )
    return Curl(method, split.path + (f"?{split.query}" if split.query else ""), data, headers)


def answer(client, command: Command) -> dict:
    """Send a README curl to the app (the test client stands in for `dip-cds serve` on port 8080);
    returns its JSON, after running the pipe consumer on it as written."""
    curl = parse_curl(command.argv)
    response = client.open(curl.path, method=curl.method, data=curl.data, headers=curl.headers)
    assert response.status_code == 200, (command.argv, response.get_data(as_text=True)[:500])
    if command.piped_into:
        assert command.piped_into[:3] == ["python3", "-m", "json.tool"], command.piped_into
        piped = subprocess.run(
            [sys.executable, *command.piped_into[1:]], input=response.data, capture_output=True, check=False
        )
        assert piped.returncode == 0, piped.stderr
    return response.get_json()


def app_on(home: Path):
    return create_app(settings=settings_from_mapping({"logging": {"level": "WARNING"}}), home=home)


def _words(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


# ----------------------------------------------------------------------------- the specification


def test_the_quick_start_installs_serves_and_its_hook_call_returns_the_card_it_quotes(tmp_path) -> None:
    text = section("Quick start")
    install, call, tests = blocks(text)
    steps = list(commands(install))
    assert [c.argv[:3] for c in steps[:2]] == [["python3", "-m", "venv"], [".venv/bin/pip", "install", "-q"]]
    assert steps[2].argv[:2] == [".venv/bin/dip-cds", "serve"]
    check_dip_cds(steps[2].argv)
    client = app_on(tmp_path).test_client()
    (hook_call,) = commands(call)
    (card,) = answer(client, hook_call)["cards"]
    quoted = re.search(r'`"summary": "(.+?)"`', text, re.DOTALL)
    assert quoted and _words(quoted.group(1)) == card["summary"]
    for curl in inline_curls(text):
        answer(client, curl)
    assert tests.strip().endswith(".venv/bin/python -m pytest")  # .ci/run runs this line verbatim


def test_the_sandbox_recipe_names_servers_ports_and_settings_that_exist(tmp_path) -> None:
    text = section("The CDS Hooks Sandbox")
    servers, jwt = blocks(text)
    ports = {}
    for command in commands(servers):
        if command.argv[0] in DIP_CDS:
            check_dip_cds(command.argv)
            ports[command.argv[1]] = command.argv[command.argv.index("--port") + 1]
        else:
            assert command.argv[:3] == ["python3", "-m", "http.server"], command.argv
            check_path(command.argv[command.argv.index("--directory") + 1])
            ports["sandbox"] = command.argv[3]
    (url,) = blocks(text, "text")
    query = {k: v[0] for k, v in parse_qs(urlsplit(url.strip()).query).items()}
    assert urlsplit(url.strip()).port == int(ports["sandbox"])
    assert query["fhirServiceUrl"] == f"http://127.0.0.1:{ports['demo-fhir']}"
    assert query["serviceDiscoveryURL"] == f"http://127.0.0.1:{ports['serve']}/cds-services"
    assert query["patientId"] in FhirStore.from_directory(DEMO_DATA_DIR).by_type["Patient"]
    (secured,) = commands(jwt)
    check_dip_cds(secured.argv)
    settings = load_settings(None, home=tmp_path, environ=secured.env)
    assert (settings.security.jwt, settings.security.trust_sandbox) == ("required", True)
    assert settings.server.public_base_url == f"http://127.0.0.1:{ports['serve']}"
    client = app_on(tmp_path).test_client()
    for curl in inline_curls(text):
        answer(client, curl)


@pytest.mark.slow
def test_the_real_data_block_runs_as_written_and_the_service_answers_from_the_real_catalog(
    tmp_path, monkeypatch
) -> None:
    if not (SHARED / "data").is_dir():
        pytest.skip("../shared/data is not available")
    text = section("Real reference data")
    (block,) = blocks(text)
    monkeypatch.chdir(ROOT)  # "from the repository root": the ../shared/data paths are relative to it
    steps = list(commands(block))
    homes = {c.argv[c.argv.index("--home") + 1] for c in steps}
    assert len(homes) == 1 and all(c.argv[0] == ".venv/bin/dip-cds" for c in steps)
    *imports, serve = steps
    assert serve.argv[3] == "serve"
    for command in steps:
        check_dip_cds(command.argv)
    for command in imports:  # on a fresh home instead of the README's
        argv = [str(tmp_path) if word in homes else word for word in command.argv[1:]]
        result = CliRunner().invoke(main, argv)
        assert result.exit_code == 0, (command.argv, result.output[-2000:])
    client = app_on(tmp_path).test_client()  # now on the imported data
    ready = client.get("/readyz").get_json()["data"]
    assert ready["catalogs"]["default_region"] == "410400"
    assert [(c["region"], c["year"], c["sample"]) for c in ready["catalogs"]["catalogs"]] == [
        ("410400", 2025, False)
    ]
    assert (ready["terminology"]["dx"]["codes"], ready["terminology"]["px"]["codes"]) == (33304, 13686)
    (hook_call,) = commands(blocks(section("Quick start"))[1])
    (card,) = answer(client, hook_call)["cards"]
    quoted = re.search(r"`(本次手术后预计病种为[^`]+?) …`, source `([^`]+)`", text)
    assert quoted, "the real-data section quotes the card"
    assert card["summary"].startswith(_words(quoted.group(1))) and card["source"]["label"] == quoted.group(2)
