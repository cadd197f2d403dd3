"""``splitmesh citadel mint-token``: prints a token Citadel's verifier accepts once."""

from __future__ import annotations

import stat
import time
from pathlib import Path

from typer.testing import CliRunner

from cli.citadel_command import citadel_app
from services.citadel.adapters.key_files import load_or_create_token_key
from services.citadel.core.token import TokenVerifier
from shared.contracts.ca.spiffe import SpiffeId


def test_mint_token_creates_the_key_and_prints_a_valid_token(tmp_path: Path) -> None:
    key_path = tmp_path / "state" / "token-signing.key"
    result = CliRunner().invoke(
        citadel_app,
        ["mint-token", "-n", "shop", "-s", "catalog", "--ttl", "60"],
        env={"SPLITMESH_CITADEL_STATE_DIR": str(tmp_path / "state")},
    )
    assert result.exit_code == 0, result.output
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    token = result.stdout.strip().splitlines()[-1]
    verifier = TokenVerifier(
        public_key=load_or_create_token_key(key_path).public_key(),
        trust_domain="cluster.local",
        max_ttl_s=3600,
    )
    assert verifier.verify(token, now=time.time()) == SpiffeId("cluster.local", "shop", "catalog")


def test_mint_token_refuses_bad_names_and_lifetimes(tmp_path: Path) -> None:
    env = {"SPLITMESH_CITADEL_STATE_DIR": str(tmp_path)}
    bad_name = CliRunner().invoke(
        citadel_app, ["mint-token", "-n", "Shop_1", "-s", "catalog"], env=env
    )
    assert bad_name.exit_code == 2
    assert "DNS-1123" in bad_name.output
    too_long = CliRunner().invoke(
        citadel_app, ["mint-token", "-n", "shop", "-s", "catalog", "--ttl", "99999"], env=env
    )
    assert too_long.exit_code == 2
    assert not (tmp_path / "token-signing.key").exists()
