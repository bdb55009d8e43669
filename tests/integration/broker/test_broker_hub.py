"""The asset broker against a fake Hub on loopback: what it fetches, how it refuses, and that an
interrupted download leaves nothing that looks complete. The Docker tests load the fetched
assets by their Hub names inside a sandbox with no network."""
from __future__ import annotations

import json

import pytest

from sandbox.broker import AssetRefused, Broker, assets_used
from sandbox.broker.rules import AssetRules


def _broker(tmp_path, hub, **rules) -> Broker:
    return Broker(tmp_path / "cache", "online", AssetRules(**rules) if rules else None,
                  ledger=tmp_path / "run" / "assets.json", endpoint=hub.url, mode_reason="test")


def test_fetches_a_model_pinned_and_hashed_then_serves_it_from_the_cache(fake_hub, tmp_path):
    b = _broker(tmp_path, fake_hub)
    rec = b.request_model("org/tiny-bert")
    assert rec.revision == fake_hub.commit("model", "org/tiny-bert") and rec.source == fake_hub.url
    served = fake_hub.files("model", "org/tiny-bert")
    assert set(rec.files) == set(served) and all(rec.files[f].size == served[f] for f in served)
    snap = tmp_path / "cache" / "hf" / "hub" / "models--org--tiny-bert" / "snapshots" / rec.revision
    import hashlib

    for name, entry in rec.files.items():
        assert hashlib.sha256((snap / name).read_bytes()).hexdigest() == entry.sha256
    gets = fake_hub.count("GET", "/resolve/")
    again = b.request_model("org/tiny-bert")  # a second run: from the cache, no download
    assert again == rec and fake_hub.count("GET", "/resolve/") == gets
    row = assets_used(tmp_path / "run" / "assets.json")["assets"][0]
    assert row["id"] == "org/tiny-bert" and row["sha256"] == rec.digest and row["licence"] == rec.licence


def test_prepares_a_dataset_for_offline_loading(fake_hub, tmp_path):
    rec = _broker(tmp_path, fake_hub).request_dataset("org/tiny-glue", config="sst2")
    assert rec.config == "sst2" and 'load_dataset("org/tiny-glue", "sst2")' in rec.how
    prepared = list((tmp_path / "cache" / "hf" / "datasets").glob("org___tiny-glue/sst2/*/*/*.arrow"))
    assert prepared, "the arrow cache datasets loads offline was not prepared"
    assert not list((tmp_path / "cache" / "hf" / "datasets").glob("org___tiny-glue/sst2_small"))  # only what was asked


@pytest.mark.parametrize("case", ["blacklisted", "not_allowed", "too_large", "not_found", "unreachable"])
def test_refusals_say_which_rule_and_fetch_nothing(fake_hub, tmp_path, case):
    rules = {"blacklisted": {"blacklist": ("https://huggingface.co/org/tiny-bert",)},
             "not_allowed": {"sources": ("https://huggingface.co",)},
             "too_large": {"max_asset_bytes": 1024}}.get(case, {})
    b = _broker(tmp_path, fake_hub, **rules)
    if case == "unreachable":
        b.endpoint = "http://127.0.0.1:9"  # nothing listens there
        b.rules = AssetRules(sources=("http://127.0.0.1:9",))
    with pytest.raises(AssetRefused) as e:
        b.request_model("org/no-such-model" if case == "not_found" else "org/tiny-bert")
    assert e.value.code == case, e.value.reason
    assert not list((tmp_path / "cache" / "hf" / "hub").glob("models--*/snapshots/*/*"))
    assert not list((tmp_path / "cache" / "records").glob("model--*"))
    assert assets_used(tmp_path / "run" / "assets.json")["refused"][0]["code"] == case


def test_an_interrupted_download_leaves_no_complete_looking_entry_and_a_retry_finishes(fake_hub, tmp_path):
    b = _broker(tmp_path, fake_hub)
    fake_hub.break_file("model.safetensors", after_bytes=100, then_status=500)
    with pytest.raises(AssetRefused) as e:
        b.request_model("org/tiny-bert")
    assert e.value.code == "unreachable"
    assert not list((tmp_path / "cache" / "records").glob("model--*"))  # nothing claims to be complete
    fake_hub.clear_faults()
    rec = b.request_model("org/tiny-bert")
    assert "model.safetensors" in rec.files


def test_the_token_is_used_on_the_host_and_written_nowhere(tiny_repos, hubtools, tmp_path, monkeypatch):
    token = "hf_s3cretTokenForTheFakeHub"
    monkeypatch.delenv("HF_TOKEN", raising=False)
    with hubtools.FakeHub(repos=tiny_repos, token_required=token) as hub:
        for k, v in hub.env().items():
            monkeypatch.setenv(k, v)
        b = _broker(tmp_path, hub)
        with pytest.raises(AssetRefused):
            b.request_model("org/tiny-bert")  # no token: the hub says no
        monkeypatch.setenv("HF_TOKEN", token)
        b.request_model("org/tiny-bert")
        b.request_dataset("org/tiny-sst2")
    leaked = [p for p in tmp_path.rglob("*") if p.is_file() and token.encode() in p.read_bytes()]
    assert leaked == []


def test_packages_come_from_the_hosts_index_into_the_wheelhouse(hubtools, tmp_path, monkeypatch):
    hubtools.build_wheel(tmp_path / "index")
    monkeypatch.setenv("PIP_NO_INDEX", "1")  # the host's pip configuration: here a local folder
    monkeypatch.setenv("PIP_FIND_LINKS", str(tmp_path / "index"))
    b = Broker(tmp_path / "cache", "online", ledger=tmp_path / "assets.json", mode_reason="test")
    rec = b.request_packages(["reprotiny==0.1"])
    assert list(rec.files) == ["reprotiny-0.1-py3-none-any.whl"]
    assert (tmp_path / "cache" / "wheels" / "reprotiny-0.1-py3-none-any.whl").is_file()
    with pytest.raises(AssetRefused) as e:
        b.request_packages(["reprotiny==9.9"])
    assert e.value.code == "not_found"
    assert not list((tmp_path / "cache").glob(".download-*"))  # staging is cleaned either way
    assert json.loads((tmp_path / "assets.json").read_text())["entries"][-1]["refused"]["code"] == "not_found"


# ------------------------------------------------------------------ inside a real sandbox
LOAD = r'''
import os, datasets, torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer
tok = AutoTokenizer.from_pretrained("org/tiny-bert")
model = AutoModelForSequenceClassification.from_pretrained("org/tiny-bert")
ds = datasets.load_dataset("org/tiny-sst2")
batch = tok(ds["train"]["sentence"][:4], padding=True, return_tensors="pt")
print("logits", tuple(model(**batch).logits.shape), "rows", len(ds["train"]), len(ds["test"]))
print("mapped", len(ds["train"].map(lambda r: {"n": len(r["sentence"])})))
import reprotiny; print("pkg", reprotiny.ANSWER)
'''


@pytest.mark.docker
def test_a_sandbox_without_network_loads_them_by_hub_name_read_only(fake_hub, hubtools, tmp_path, monkeypatch,
                                                                  docker_engine):
    from sandbox.broker.hub import DATASETS_LINK
    from sandbox.docker import DockerSandbox
    from sandbox.policy import SandboxPolicy

    hubtools.build_wheel(tmp_path / "index")
    b = _broker(tmp_path, fake_hub)
    b.request_model("org/tiny-bert")
    b.request_dataset("org/tiny-sst2")
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(tmp_path / "index"))
    b.request_packages(["reprotiny"])
    with DockerSandbox(SandboxPolicy(asset_mount=str(b.root)), run_id="itest-broker", role="reproduce") as sb:
        assert sb.container.attrs["HostConfig"]["NetworkMode"] == "none"
        assert sb.exec(["bash", "-c", DATASETS_LINK], timeout=60).returncode == 0
        pip = sb.exec("python -m pip install --quiet reprotiny", timeout=300)
        assert pip.returncode == 0, pip.stderr
        sb.write_file("load.py", LOAD)
        r = sb.exec(["python", "load.py"], timeout=600)
        assert r.returncode == 0, r.stderr[-2000:]
        assert "logits (4, 2)" in r.stdout and "mapped" in r.stdout and "pkg 42" in r.stdout
        w = sb.exec("touch /opt/repro/broker/hf/x 2>&1; echo rc=$?", timeout=30)
        assert "Read-only file system" in w.stdout and "rc=1" in w.stdout
    assert not (b.root / "hf" / "x").exists()


def test_an_unreachable_hub_falls_back_to_the_catalogue_with_a_deviation(tmp_path):
    from agent.context import Offline
    from agent.planning.assets import choose_dataset, choose_model

    b = Broker(tmp_path / "cache", "online", AssetRules(sources=("http://127.0.0.1:9",)),
               ledger=tmp_path / "assets.json", endpoint="http://127.0.0.1:9", mode_reason="test")  # nothing listens
    model, data = choose_model(b, "bert-base-uncased", Offline()), choose_dataset(b, "SST-2")
    assert (model.name, data.name) == ("all-MiniLM-L6-v2", "movieReviewSnippets_GroundTruth.txt")
    assert "did not answer" in model.deviation.reason and "did not answer" in data.deviation.reason
    rows = assets_used(tmp_path / "assets.json")
    assert {r["stands_in_for"] for r in rows["assets"]} == {"bert-base-uncased", "SST-2"}
    assert {x["code"] for x in rows["refused"]} == {"unreachable"}
