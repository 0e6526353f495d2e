"""`parcours nats-config`: the shipped example is what it writes, seeds stay private."""

from __future__ import annotations

import re
import stat
import subprocess
from pathlib import Path

from probes.bus.server_config import write_config
from tests.services import nats_server_binary

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ROOT / "configs" / "nats"


def anonymised(text: str) -> str:
    """The generated text with its keys and passwords replaced by placeholders."""
    text = re.sub(r"nkey: U[A-Z0-9]{55}", "nkey: PUBLIC_KEY", text)
    text = re.sub(r'password: "[^"]+"', 'password: "PASSWORD"', text)
    return re.sub(r"(site-\w+):[^@]+@", r"\1:PASSWORD@", text)


def test_the_shipped_example_is_what_nats_config_writes(tmp_path: Path) -> None:
    write_config(
        tmp_path,
        ["lyon", "paris"],
        listen="0.0.0.0:4222",
        store_dir="/var/lib/nats/parcours",
        leafnode_listen="0.0.0.0:7422",
        hub_address="hub.example.com:7422",
    )

    for name in ("nats.conf", "site-lyon.conf"):
        example = SHIPPED / name.replace(".conf", ".example.conf")
        assert anonymised((tmp_path / name).read_text()) == example.read_text(), name


def test_seeds_and_configs_with_passwords_are_readable_by_their_owner_only(
    tmp_path: Path,
) -> None:
    write_config(tmp_path, ["lyon"], leafnode_listen="127.0.0.1:7422")

    for path in tmp_path.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path.name
    assert (tmp_path / "agent-lyon.nk").read_text().startswith("SU")


def test_the_hub_config_is_accepted_by_nats_server(tmp_path: Path) -> None:
    path, _ = write_config(tmp_path, ["lyon", "paris"], store_dir=str(tmp_path / "store"))

    done = subprocess.run(
        [nats_server_binary(), "-c", str(path), "-t"],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )

    assert done.returncode == 0, done.stdout + done.stderr
