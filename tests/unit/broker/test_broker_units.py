"""The asset broker's rules, records and ledger, the catalogue, the plan's choice of assets and
the read-only mount in the sandbox policy — without a network (the fake Hub tests fetch for real)."""
from __future__ import annotations

import copy
import json

import pytest

from agent.context import Offline
from agent.planning.assets import choose_dataset, choose_model, hub_ids
from sandbox.broker import AssetRefused, Broker, assets_used, catalogue
from sandbox.broker.packages import check_requirements
from sandbox.broker.records import AssetRecord, FileEntry, RecordStore, record_key
from sandbox.broker.rules import AssetRules, read_blacklist
from sandbox.policy import ASSET_MOUNT_POINT, SandboxPolicy


def test_rules_name_the_rule_they_apply():
    r = AssetRules(sources=("https://huggingface.co",), blacklist=("https://huggingface.co/org/forbidden",),
                   max_asset_bytes=1 << 20, max_run_bytes=3 << 20)
    assert r.source_refusal("https://huggingface.co/") is None
    assert "not allowed" in r.source_refusal("http://127.0.0.1:8080")
    assert "blacklist" in r.blacklist_refusal("model", "org/forbidden")
    assert "blacklist" in r.blacklist_refusal("model", "ORG/Forbidden")
    assert r.blacklist_refusal("model", "org/forbidden-not") is None
    assert "over the cap" in r.size_refusal("model", "a/b", 2 << 20, 0)
    assert "take this run over" in r.size_refusal("model", "a/b", 1 << 20, (5 << 20) // 2)
    assert r.size_refusal("model", "a/b", 1 << 20, 0) is None


def test_blacklist_file_in_paperbench_layout(tmp_path):
    assert read_blacklist(tmp_path) == ()
    (tmp_path / "blacklist.txt").write_text("none\n")
    assert read_blacklist(tmp_path) == ()
    (tmp_path / "blacklist.txt").write_text("# authors' code\nhttps://github.com/a/b\n\nhttps://huggingface.co/a/m\n")
    assert read_blacklist(tmp_path) == ("https://github.com/a/b", "https://huggingface.co/a/m")


@pytest.mark.parametrize("req", ["--index-url=http://x", "pkg @ https://evil/x.whl", "not a req!!", ""])
def test_requirements_that_choose_their_own_source_are_refused(req):
    with pytest.raises(AssetRefused) as e:
        check_requirements([req], AssetRules())
    assert e.value.code == "bad_request"


def test_a_record_is_complete_or_absent(tmp_path):
    store = RecordStore(tmp_path)
    key = record_key("model", "org/m", None)
    assert store.get(key) is None
    (tmp_path / "records").mkdir()
    (tmp_path / "records" / f"{key}.json").write_text('{"kind": "model", "id": "org/m", "sou')  # torn write
    assert store.get(key) is None
    rec = AssetRecord(kind="model", id="org/m", source="http://h", revision="abc",
                      files={"a": FileEntry(size=3, sha256="0" * 64)})
    store.put(key, rec)
    assert store.get(key) == rec and rec.bytes == 3 and len(rec.digest) == 64
    assert record_key("model", "org/m", "v1") != key != record_key("dataset", "org/m", None)


def test_offline_serves_the_catalogue_and_refuses_the_rest_with_a_ledger(tmp_path):
    ledger = tmp_path / "run" / "assets.json"
    b = Broker(tmp_path / "cache", "offline", ledger=ledger, mode_reason="chosen")
    rec = b.request_model("sentence-transformers/all-MiniLM-L6-v2")
    assert rec.source == "catalogue" and rec.licence == "apache-2.0" and "model.safetensors" in rec.files
    assert rec.files["model.safetensors"].sha256 == catalogue.record(catalogue.ENTRIES[0], tmp_path / "c2") \
        .files["model.safetensors"].sha256  # hashed from the real files, not made up
    with pytest.raises(AssetRefused) as e:
        b.request_model("bert-base-uncased")
    assert e.value.code == "offline" and "--assets online" in e.value.reason
    with pytest.raises(AssetRefused) as e:
        b.request_packages(["tabulate"])
    assert e.value.code == "offline"
    used = assets_used(ledger)
    assert used["mode"] == "offline" and [a["id"] for a in used["assets"]] == ["all-MiniLM-L6-v2"]
    assert {(x["id"], x["code"]) for x in used["refused"]} == {("bert-base-uncased", "offline"), ("tabulate", "offline")}


def test_the_cache_is_readable_by_the_sandbox_user(tmp_path):
    root = tmp_path / "cache"
    root.mkdir(mode=0o700)
    Broker(root, "offline")
    assert root.stat().st_mode & 0o755 == 0o755


def test_the_plan_uses_the_papers_own_assets_or_says_why_not(tmp_path):
    b = Broker(tmp_path / "cache", "offline", ledger=tmp_path / "assets.json", mode_reason="chosen")
    own = choose_model(b, "all-MiniLM-L6-v2", Offline())
    assert own.own and own.deviation is None and own.name == "all-MiniLM-L6-v2"
    sub = choose_model(b, "bert-base-uncased", Offline())
    assert not sub.own and sub.name == "all-MiniLM-L6-v2" and sub.deviation.what == "base model"
    assert "offline mode" in sub.deviation.reason and "closest asset" in sub.deviation.reason
    vague = choose_model(b, "BERT (Devlin et al., 2019)", Offline())
    assert "names no Hub id" in vague.deviation.reason
    data = choose_dataset(b, "SST-2")
    assert data.deviation.what == "dataset" and "stanfordnlp/sst2" in json.dumps(assets_used(tmp_path / "assets.json"))
    assert choose_dataset(b, "movie-review snippets (Hutto & Gilbert)").own
    # other movie-review data is not the bundled snippets: substituted, and the deviation says so
    for other, hub in (("IMDb movie reviews", None), ("Rotten Tomatoes", "cornell-movie-review-data/rotten_tomatoes"),
                       ("Amazon review snippets", None)):
        got = choose_dataset(b, other)
        if other.startswith("Amazon"):  # the catalogue's other snippets file is its own asset
            assert got.own and got.name == "amazonReviewSnippets_GroundTruth.txt"
            continue
        assert not got.own and got.deviation.what == "dataset" and got.deviation.paper == other, other
        assert "movie-review snippets" in got.deviation.ours
        assert hub is None or hub in json.dumps(assets_used(tmp_path / "assets.json"))  # the alias was tried
    rows = assets_used(tmp_path / "assets.json")["assets"]
    assert {r["stands_in_for"] for r in rows} >= {"bert-base-uncased", "SST-2"}
    assert hub_ids("bert-base-uncased") == ["bert-base-uncased"] and hub_ids("BERT base (Devlin)") == []


def test_the_policy_mounts_the_cache_read_only_and_nothing_else(tmp_path):
    p = SandboxPolicy(asset_mount=str(tmp_path))
    kw = p.docker_kwargs(image="i", run_id="r1", volume="repro-r1")
    assert kw["volumes"][str(tmp_path)] == {"bind": ASSET_MOUNT_POINT, "mode": "ro"}
    attrs = {"HostConfig": {**p.expected_host_config(), "Tmpfs": {"/tmp": "size=1"},
                            "Binds": ["repro-r1:/workspace", f"{tmp_path}:{ASSET_MOUNT_POINT}:ro"]},
             "Config": {"User": p.pid1_user, "Env": []},
             "Mounts": [{"Type": "bind", "Source": str(tmp_path), "Destination": ASSET_MOUNT_POINT, "RW": False}]}
    assert p.check_container(attrs) == []
    rw = copy.deepcopy(attrs)
    rw["Mounts"][0]["RW"] = True
    assert any("read-only" in x for x in p.check_container(rw))
    other = copy.deepcopy(attrs)
    other["HostConfig"]["Binds"].append(f"/home:{ASSET_MOUNT_POINT}:ro")
    assert p.check_container(other)
    assert SandboxPolicy().check_container(attrs)  # a policy without the mount refuses it
    for bad in ("/", "/var/run", "/etc", "relative/path", str(tmp_path / "missing")):
        with pytest.raises(ValueError):
            SandboxPolicy(asset_mount=bad)
