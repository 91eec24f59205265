"""API keys: parsing, lookup by digest, and who owns a thread."""

from __future__ import annotations

from pathlib import Path

import pytest

from service.api.auth import OWNER_KEY, KeyRing, Principal
from service.settings import Settings

ALICE_KEY = "alice-key-0123456789"
BOB_KEY = "bob-key-0123456789ab"


def keyring(api_keys: str = "", api_keys_file: str | None = None) -> KeyRing:
    settings = Settings(_env_file=None, api_keys=api_keys, api_keys_file=api_keys_file)
    return KeyRing.from_settings(settings)


def test_keys_from_the_setting_and_a_file_map_to_their_owners(tmp_path: Path) -> None:
    keys_file = tmp_path / "keys"
    keys_file.write_text(f"# one per line\n\n bob : {BOB_KEY} \n")
    ring = keyring(f"alice:{ALICE_KEY}", str(keys_file))
    assert len(ring) == 2
    assert ring.owner_for(ALICE_KEY) == "alice"
    assert ring.owner_for(BOB_KEY) == "bob"
    assert ring.owner_for(ALICE_KEY[:-1]) is None
    assert ring.owner_for("") is None


@pytest.mark.parametrize("entry", ["alice", f":{ALICE_KEY}", "alice:short-key", "alice:"])
def test_a_malformed_or_short_key_is_refused_at_start(entry: str) -> None:
    with pytest.raises(ValueError, match="at least 16 characters"):
        keyring(entry)


def test_no_keys_configured_means_an_empty_ring() -> None:
    ring = keyring("")
    assert len(ring) == 0
    assert ring.owner_for(ALICE_KEY) is None


def test_an_owner_sees_only_its_own_threads_and_no_owner_sees_all() -> None:
    alice = Principal(owner="alice")
    assert alice.owns({OWNER_KEY: "alice"})
    assert not alice.owns({OWNER_KEY: "bob"})
    assert not alice.owns({})
    assert Principal(owner=None).owns({OWNER_KEY: "bob"})
