from __future__ import annotations

import io
import tarfile

from sandbox import image


def test_closure_has_deps_without_extras():
    names = {image._norm(d.metadata["Name"]) for d in image.dist_closure()}
    assert {"torch", "transformers", "peft", "safetensors", "numpy", "tokenizers", "accelerate", "pyyaml"} <= names
    assert {"filelock", "huggingface-hub", "sympy"} <= names  # transitive
    assert "pytest" not in names and "docker" not in names and "openai" not in names


def test_tag_is_content_hash_and_stable():
    a, b = image.collect_inputs(), image.collect_inputs()
    assert a.tag == b.tag and a.tag.startswith("repro-sandbox:") and len(a.tag.split(":")[1]) == 12
    m = a.manifest()
    assert any(d.startswith("torch==") for d in m["dists"]) and m["builder"] == image.BUILDER_VERSION


def test_image_changes():
    ch = image.image_changes("abc")
    assert "USER 1000:1000" in ch and "WORKDIR /workspace" in ch
    env = {c[4:].split("=", 1)[0]: c.split("=", 1)[1] for c in ch if c.startswith("ENV ")}
    assert env["PATH"].startswith("/opt/python/bin") and env["HF_HUB_OFFLINE"] == "1" and env["HOME"] == "/tmp"
    assert env["REPRO_MODELS"] == "/opt/repro/models" and env["PYTHONDONTWRITEBYTECODE"] == "1"


def test_dockerfile_build_args_and_context(tmp_path):
    cpu = image.dockerfile_build_args(gpu=False)
    gpu = image.dockerfile_build_args(gpu=True)
    assert cpu["TORCH_INDEX_URL"].endswith("/cpu") and "CUDA_BASE" in gpu and "+" not in cpu["TORCH_VERSION"]
    assert "transformers==" in cpu["PIP_REQUIREMENTS"] and "torch==" not in cpu["PIP_REQUIREMENTS"]
    dockerfile, args = image.prepare_dockerfile_context(tmp_path, gpu=False)
    text = dockerfile.read_text()
    for arg in args:
        assert f"ARG {arg}" in text, arg
    assert "USER ${SANDBOX_UID}" in text and (tmp_path / "assets/models/all-MiniLM-L6-v2/config.json").is_file()
    assert (tmp_path / "assets/data/movieReviewSnippets_GroundTruth.txt").is_file()


def test_rootfs_tar_helpers():
    buf = io.BytesIO()
    t = image._RootfsTar(buf)
    t.mkdir("workspace", 0o755, 1000, 1000)
    t.symlink("bin", "usr/bin")
    t.file("etc/passwd", data=b"x")
    t.file("etc/passwd", data=b"dup ignored")
    t.close()
    buf.seek(0)
    members = {m.name: m for m in tarfile.open(fileobj=buf)}
    assert members["workspace"].uid == 1000 and members["bin"].issym() and members["etc/passwd"].size == 1
    assert "etc" in members
