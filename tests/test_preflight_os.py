"""The node preflight's operating-system check (components/bootstrap/scripts/preflight.sh), run in
the script sandbox of tests/test_scripts.py.

The supported systems are one list, ``hardware.SUPPORTED_OS`` (Ubuntu 24.04, Debian 12, Debian
13), handed to the script by ``hardware.preflight_env()``. The script reads ID and VERSION_ID
from the node's os-release(5) file (/etc/os-release; /usr/lib/os-release when that is missing, as
the format prescribes) and refuses any other system, or a host with neither file, in the one
aggregated "does not meet the hardware spec" message, naming the node, what it runs
(PRETTY_NAME) and the supported list: before prepare-node touches anything.

The os-release texts below are the distributions' own files: Debian 12's as this machine has it,
Debian 13's from the rehearsal's Debian base image (tools/rehearsal/image.py, debootstrap of
trixie, base-files 13.8), the others as their base-files packages write them.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from components import hardware, versions
from components.bootstrap.scripts import render_bundle
from tests.test_scripts import Result, Sandbox, _explain, _prepare_env, fresh_node

UBUNTU_2404 = """PRETTY_NAME="Ubuntu 24.04.3 LTS"
NAME="Ubuntu"
VERSION_ID="24.04"
VERSION="24.04.3 LTS (Noble Numbat)"
VERSION_CODENAME=noble
ID=ubuntu
ID_LIKE=debian
HOME_URL="https://www.ubuntu.com/"
SUPPORT_URL="https://help.ubuntu.com/"
BUG_REPORT_URL="https://bugs.launchpad.net/ubuntu/"
PRIVACY_POLICY_URL="https://www.ubuntu.com/legal/terms-and-policies/privacy-policy"
UBUNTU_CODENAME=noble
LOGO=ubuntu-logo
"""

DEBIAN_12 = """PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"
NAME="Debian GNU/Linux"
VERSION_ID="12"
VERSION="12 (bookworm)"
VERSION_CODENAME=bookworm
ID=debian
HOME_URL="https://www.debian.org/"
SUPPORT_URL="https://www.debian.org/support"
BUG_REPORT_URL="https://bugs.debian.org/"
"""

DEBIAN_13 = """PRETTY_NAME="Debian GNU/Linux 13 (trixie)"
NAME="Debian GNU/Linux"
VERSION_ID="13"
VERSION="13 (trixie)"
VERSION_CODENAME=trixie
DEBIAN_VERSION_FULL=13.8
ID=debian
HOME_URL="https://www.debian.org/"
SUPPORT_URL="https://www.debian.org/support"
BUG_REPORT_URL="https://bugs.debian.org/"
"""

UBUNTU_2204 = """PRETTY_NAME="Ubuntu 22.04.5 LTS"
NAME="Ubuntu"
VERSION_ID="22.04"
VERSION="22.04.5 LTS (Jammy Jellyfish)"
VERSION_CODENAME=jammy
ID=ubuntu
ID_LIKE=debian
HOME_URL="https://www.ubuntu.com/"
SUPPORT_URL="https://help.ubuntu.com/"
BUG_REPORT_URL="https://bugs.launchpad.net/ubuntu/"
PRIVACY_POLICY_URL="https://www.ubuntu.com/legal/terms-and-policies/privacy-policy"
UBUNTU_CODENAME=jammy
"""

DEBIAN_11 = """PRETTY_NAME="Debian GNU/Linux 11 (bullseye)"
NAME="Debian GNU/Linux"
VERSION_ID="11"
VERSION="11 (bullseye)"
VERSION_CODENAME=bullseye
ID=debian
HOME_URL="https://www.debian.org/"
SUPPORT_URL="https://www.debian.org/support"
BUG_REPORT_URL="https://bugs.debian.org/"
"""

ROCKY_9 = """NAME="Rocky Linux"
VERSION="9.4 (Blue Onyx)"
ID="rocky"
ID_LIKE="rhel centos fedora"
VERSION_ID="9.4"
PLATFORM_ID="platform:el9"
PRETTY_NAME="Rocky Linux 9.4 (Blue Onyx)"
ANSI_COLOR="0;32"
LOGO="fedora-logo-icon"
CPE_NAME="cpe:/o:rocky:rocky:9::baseos"
HOME_URL="https://rockylinux.org/"
BUG_REPORT_URL="https://bugs.rockylinux.org/"
"""

#: An Ubuntu 24.04 derivative: ID_LIKE says ubuntu, ID does not. Only ID counts.
MINT_22 = """NAME="Linux Mint"
VERSION="22 (Wilma)"
ID=linuxmint
ID_LIKE="ubuntu debian"
PRETTY_NAME="Linux Mint 22"
VERSION_ID="22"
VERSION_CODENAME=wilma
UBUNTU_CODENAME=noble
"""

SUPPORTED_NAMES = ", ".join(system.name for system in hardware.SUPPORTED_OS)
HEADER = "does not meet the hardware spec"


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[Sandbox]:
    yield Sandbox(tmp_path)


def _env(node: str = "w-0") -> dict[str, str]:
    return {"NODE_NAME": node, **hardware.preflight_env()}


def _install(sandbox: Sandbox, text: str) -> None:
    """The OS's own layout: the file in /usr/lib, /etc/os-release a relative link to it."""
    real = sandbox.path("/usr/lib/os-release")
    real.write_text(text)
    link = sandbox.path("/etc/os-release")
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to("../usr/lib/os-release")


def _refusal(result: Result) -> str:
    """The preflight's one failure line (asserting there is exactly one)."""
    lines = [line for line in result.stderr.splitlines() if HEADER in line]
    assert len(lines) == 1, f"expected ONE preflight failure message, got {len(lines)}:\n{_explain(result)}"
    return lines[0]


#: Commands a preflight may call: it reads the machine and tries one URL, nothing else.
READ_ONLY = {"nproc", "getconf", "uname", "df", "curl"}


# --- accepted -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "pretty"),
    [(UBUNTU_2404, "Ubuntu 24.04.3 LTS"), (DEBIAN_12, "Debian GNU/Linux 12 (bookworm)"),
     (DEBIAN_13, "Debian GNU/Linux 13 (trixie)")],
    ids=["ubuntu-24.04", "debian-12", "debian-13"],
)
def test_the_preflight_accepts_a_supported_system(sandbox: Sandbox, text: str, pretty: str) -> None:
    _install(sandbox, text)
    result = sandbox.run("preflight.sh", _env())
    assert result.rc == 0, f"{pretty} is supported (hardware.SUPPORTED_OS) but the preflight refused it:\n{_explain(result)}"
    assert f"node w-0 OK: {pretty}," in result.stderr, f"the success summary does not name the system:\n{result.stderr}"


@pytest.mark.parametrize("version_id", ['VERSION_ID="13"', "VERSION_ID=13", "VERSION_ID='13'"])
def test_any_quoting_of_an_os_release_value_is_read(sandbox: Sandbox, version_id: str) -> None:
    """os-release(5) values are bare or in double or single quotes (Debian writes VERSION_ID="13",
    Rocky ID="rocky"); comments, blank lines and a missing final newline are allowed."""
    text = f'# a comment\n\nID="debian"\n{version_id}\nPRETTY_NAME=\'Debian GNU/Linux 13 (trixie)\''
    _install(sandbox, text)
    result = sandbox.run("preflight.sh", _env())
    assert result.rc == 0, f"ID=\"debian\" with {version_id} was not read as Debian 13:\n{_explain(result)}"


def test_the_preflight_falls_back_to_usr_lib_os_release(sandbox: Sandbox) -> None:
    """os-release(5): /usr/lib/os-release is read when /etc/os-release is missing."""
    assert not sandbox.path("/etc/os-release").exists()
    sandbox.path("/usr/lib/os-release").write_text(DEBIAN_13)
    result = sandbox.run("preflight.sh", _env())
    assert result.rc == 0, f"Debian 13 in /usr/lib/os-release alone was refused:\n{_explain(result)}"


# --- refused ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "pretty"),
    [(UBUNTU_2204, "Ubuntu 22.04.5 LTS"), (DEBIAN_11, "Debian GNU/Linux 11 (bullseye)"),
     (ROCKY_9, "Rocky Linux 9.4 (Blue Onyx)"), (MINT_22, "Linux Mint 22")],
    ids=["ubuntu-22.04", "debian-11", "rocky-9", "mint-22"],
)
def test_the_preflight_refuses_another_system_naming_it_and_the_supported_ones(sandbox: Sandbox, text: str, pretty: str) -> None:
    _install(sandbox, text)
    result = sandbox.run("preflight.sh", _env("db-3"))
    assert result.rc != 0, f"{pretty} is not in hardware.SUPPORTED_OS but the preflight accepted it:\n{_explain(result)}"
    message = _refusal(result)
    expected = f"preflight: node db-3 {HEADER}: operating system '{pretty}' (needs one of: {SUPPORTED_NAMES})"
    assert expected in message, f"the refusal does not name the node, the system and the supported list:\n{message}"
    assert set(call.split()[0] for call in result.calls) <= READ_ONLY, f"the preflight ran more than read-only checks: {result.calls}"


def test_a_host_without_os_release_is_refused(sandbox: Sandbox) -> None:
    sandbox.path("/usr/lib/os-release").unlink()
    result = sandbox.run("preflight.sh", _env())
    assert result.rc != 0, f"a host without any os-release file passed the preflight:\n{_explain(result)}"
    message = _refusal(result)
    assert f"node w-0 {HEADER}: no /etc/os-release: unknown operating system (needs one of: {SUPPORTED_NAMES})" in message, message


def test_etc_os_release_takes_precedence_over_usr_lib(sandbox: Sandbox) -> None:
    """os-release(5): when /etc/os-release exists it alone is read (here Rocky over the default
    Ubuntu 24.04 in /usr/lib)."""
    etc = sandbox.path("/etc/os-release")
    etc.parent.mkdir(parents=True)
    etc.write_text(ROCKY_9)
    result = sandbox.run("preflight.sh", _env())
    assert result.rc != 0 and "'Rocky Linux 9.4 (Blue Onyx)'" in _refusal(result), _explain(result)


def test_only_the_exact_version_id_counts(sandbox: Sandbox) -> None:
    """Debian 13 is VERSION_ID="13"; a "13.1" (or a testing system without VERSION_ID) is not it."""
    for text in ('ID=debian\nVERSION_ID="13.1"\nPRETTY_NAME="Debian 13.1?"\n',
                 'ID=debian\nPRETTY_NAME="Debian GNU/Linux forky/sid"\n'):
        sandbox.path("/usr/lib/os-release").write_text(text)
        result = sandbox.run("preflight.sh", _env())
        assert result.rc != 0, f"accepted as supported:\n{text}\n{_explain(result)}"


def test_double_quoted_escapes_are_undone_in_the_message(sandbox: Sandbox) -> None:
    sandbox.path("/usr/lib/os-release").write_text('ID=acme\nVERSION_ID=1\nPRETTY_NAME="Acme \\"Road\\" \\$1 \\\\ Linux"\n')
    result = sandbox.run("preflight.sh", _env())
    assert "operating system 'Acme \"Road\" $1 \\ Linux'" in _refusal(result), _explain(result)


def test_an_unsupported_system_is_one_more_miss_in_the_one_message(sandbox: Sandbox) -> None:
    sandbox.path("/usr/lib/os-release").write_text(DEBIAN_11)
    result = sandbox.run("preflight.sh", {**_env(), "STUB_NPROC": "1"})
    message = _refusal(result)
    assert "operating system 'Debian GNU/Linux 11 (bullseye)'" in message and "; 1 vCPU (needs" in message, (
        f"the OS miss and the vCPU miss are not in one aggregated message:\n{message}")


def test_the_refusal_comes_before_prepare_node_touches_anything(sandbox: Sandbox) -> None:
    """The real bundle (preflight + prepare-node, `bash -s`): a Rocky host stops at the preflight."""
    node = fresh_node(sandbox)
    node.path("/usr/lib/os-release").write_text(ROCKY_9)
    fstab = node.path("/etc/fstab").read_text()
    result = node.run([], bundle=render_bundle(["preflight.sh", "prepare-node.sh"], {**_env(), **_prepare_env()}))
    assert result.rc != 0 and "'Rocky Linux 9.4 (Blue Onyx)'" in _refusal(result), _explain(result)
    assert set(call.split()[0] for call in result.calls) <= READ_ONLY, f"something ran after the refusal: {result.calls}"
    assert node.path("/etc/fstab").read_text() == fstab and not node.path("/etc/containerd").exists(), "the node was changed"


# --- the list and its inputs --------------------------------------------------------------------


def test_the_preflight_input_lists_exactly_hardware_supported_os() -> None:
    lines = hardware.preflight_env()["SUPPORTED_OS"].split("\n")
    parsed = [tuple(line.split(" ", 2)) for line in lines]
    assert parsed == [(s.id, s.version_id, s.name) for s in hardware.SUPPORTED_OS], lines
    for system in hardware.SUPPORTED_OS:
        assert re.fullmatch(r"[a-z0-9._-]+", system.id), f"{system}: os-release IDs are lower case [a-z0-9._-]"
        assert " " not in system.version_id, f"{system}: VERSION_ID has no spaces"


def test_the_gcp_images_run_a_supported_system() -> None:
    """GCP nodes boot versions.GCP_IMAGES; the preflight runs on them too, so their release must be
    in hardware.SUPPORTED_OS (GCE's Ubuntu families are named ubuntu-YYMM-lts-ARCH)."""
    supported = {(s.id, s.version_id) for s in hardware.SUPPORTED_OS}
    for arch, image in versions.GCP_IMAGES.items():
        match = re.fullmatch(r"ubuntu-os-cloud/ubuntu-(\d\d)(\d\d)-lts-(amd64|arm64)", image)
        assert match, f"GCP_IMAGES[{arch!r}] = {image!r} is not an Ubuntu LTS family this test can read"
        release = ("ubuntu", f"{match.group(1)}.{match.group(2)}")
        assert release in supported, f"GCP_IMAGES[{arch!r}] boots {release}, which hardware.SUPPORTED_OS does not list"


def test_the_rehearsal_boots_supported_debian_releases() -> None:
    """The VM rehearsal proves Debian support on real VMs: every suite it can boot is supported."""
    from tools.rehearsal import image

    releases = {"bookworm": "12", "trixie": "13"}
    supported = {(s.id, s.version_id) for s in hardware.SUPPORTED_OS}
    for suite in image.SUITES:
        assert suite in releases, f"the rehearsal boots Debian {suite!r}, unknown to this test"
        assert ("debian", releases[suite]) in supported, f"the rehearsal boots Debian {releases[suite]}, not supported"


@pytest.mark.parametrize("bad", ["", "Debian 12", "debian", "\n\n"])
def test_a_malformed_supported_list_fails_clearly(sandbox: Sandbox, bad: str) -> None:
    result = sandbox.run("preflight.sh", {**_env(), "SUPPORTED_OS": bad})
    assert result.rc != 0 and "SUPPORTED_OS" in result.stderr, _explain(result)
