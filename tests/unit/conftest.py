"""Fixtures shared by the unit tests."""

from __future__ import annotations

import email.parser
import email.policy
import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from nasflow.space.hat import get_space
from nasflow.tfs.build import SplitSettings, build_tfs_eval

# Nine demo architectures; the `tfs_eval` fixture gives them BLEU growing with embedding size.
TINY_ARCHS = get_space("demo").sample_unique(9, seed=5)


def build_tiny_tfs_eval(tmp_path: Path, supernet_quality: bool = False) -> Path:
    """A built TFS-Eval set of TINY_ARCHS, split seeds 1 and 2 (3 train, 6 test each), whose
    BLEU grows with the embedding size; with `supernet_quality`, a stored `Supernet (loss)`
    block as `nasflow tfs-eval build --supernet-quality` writes it."""
    scores = []
    for arch in TINY_ARCHS:
        path = tmp_path / "tfs" / arch.id / "score.json"
        path.parent.mkdir(parents=True)
        bleu = arch.encoder_embed_dim / 10 + arch.decoder_layer_num
        score = {"arch": arch.to_dict(), "valid": {"bleu": bleu, "loss_bits": 4.0}}
        path.write_text(json.dumps({**score, "test": {"bleu": bleu + 1}}))
        scores.append(path)
    quality = None
    if supernet_quality:
        quality = tmp_path / "supernet_quality.json"
        rows = [{"arch_id": a.id, "predicted": -5.0 + a.decoder_layer_num / 10} for a in TINY_ARCHS]
        quality.write_text(
            json.dumps({"predictor": "Supernet (loss)", "bleu_scale": False, "rows": rows})
        )
    data = tmp_path / "data"
    data.mkdir()
    manifest = {"vocab_size": 500, "languages": {"source": "en", "target": "de"}}
    (data / "manifest.json").write_text(json.dumps({**manifest, "corpus": "multi30k"}))
    (data / "train.en").write_text("a b\nc d\n")
    (data / "train.de").write_text("e f\ng h\n")
    out = tmp_path / "tfs_eval"
    split = SplitSettings((1, 2), train_size=3)
    build_tfs_eval(scores, data, out, "demo", split, supernet_quality=quality)
    return out


@pytest.fixture()
def tfs_eval(tmp_path: Path) -> Path:
    """`build_tiny_tfs_eval` without a supernet block."""
    return build_tiny_tfs_eval(tmp_path)


@pytest.fixture()
def tfs_eval_with_supernet(tmp_path: Path) -> Path:
    """`build_tiny_tfs_eval` with a stored `Supernet (loss)` block."""
    return build_tiny_tfs_eval(tmp_path, supernet_quality=True)


class FakeOpenAI:
    """An OpenAI-compatible server on 127.0.0.1: chat completions, and the Batch API's files and
    batches as far as the `openai` SDK needs them.

    Chat completions: `script` holds the next responses (`reply`, `status`, `sleep`,
    `headers`), else `default` (a reply, or a function of the request's number that gives one)
    after `delay` seconds; an error answers `{"error": {"message": error_message or "status
    N"}}`. `requests` holds every chat request the server answered, direct or in a batch (then
    `batch` is its id), with its body and Authorization header. A batch completes on its
    `batch_polls`-th retrieval, each line answered as a direct request would be (an error goes
    to its error file).
    """

    def __init__(self) -> None:
        self.script: list[dict] = []
        self.default: str | Callable[[int], str] = "27.5"
        self.delay = 0.0
        self.error_message: str | None = None
        self.requests: list[dict] = []
        self.files: dict[str, bytes] = {}
        self.batches: dict[str, dict] = {}
        self.batch_polls = 2
        self.lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def _send(self, status: int, data: bytes, headers: dict | None = None) -> None:
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    for name, value in (headers or {}).items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client timed out first

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers["Content-Length"]))
                auth = self.headers.get("Authorization")
                if self.path.endswith("/files"):
                    self._send(200, json.dumps(owner.upload(self.headers, raw)).encode())
                    return
                if self.path.endswith("/batches"):
                    self._send(200, json.dumps(owner.create_batch(json.loads(raw))).encode())
                    return
                status, payload, headers, sleep = owner.answer(json.loads(raw), auth)
                time.sleep(sleep)
                self._send(status, json.dumps(payload).encode(), headers)

            def do_GET(self) -> None:
                parts = self.path.rstrip("/").split("/")
                if parts[-1] == "content" and parts[-2] in owner.files:
                    self._send(200, owner.files[parts[-2]])
                elif parts[-2] == "batches" and parts[-1] in owner.batches:
                    self._send(200, json.dumps(owner.retrieve_batch(parts[-1])).encode())
                else:
                    self._send(404, json.dumps({"error": {"message": "no such thing"}}).encode())

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def answer(self, body: dict, auth: str | None, batch: str | None = None):
        """(status, payload, headers, sleep) of one chat request, recorded."""
        with self.lock:
            self.requests.append({"body": body, "auth": auth, "batch": batch})
            number, default = len(self.requests), self.default
            reply = default(number) if callable(default) else default
            step = self.script.pop(0) if self.script else {"reply": reply}
        status = step.get("status", 200)
        if status == 200:
            payload = {
                "id": f"c{number}", "object": "chat.completion", "created": 0,
                "model": body["model"],
                "choices": [{"index": 0, "finish_reason": "stop",
                             "message": {"role": "assistant", "content": step["reply"]}}],
                "usage": {"prompt_tokens": 11, "completion_tokens": 3, "total_tokens": 14},
            }  # fmt: skip
        else:
            message = self.error_message or f"status {status}"
            payload = {"error": {"message": message, "type": "test"}}
        return status, payload, step.get("headers", {}), step.get("sleep", self.delay)

    def upload(self, headers, raw: bytes) -> dict:
        """Store the `file` part of a multipart upload."""
        head = f"Content-Type: {headers['Content-Type']}\r\n\r\n".encode()
        message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + raw)
        data = b""
        purpose = ""
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            if name == "file":
                data = part.get_payload(decode=True)
            elif name == "purpose":
                purpose = part.get_payload(decode=True).decode()
        with self.lock:
            file_id = f"file-{len(self.files) + 1}"
            self.files[file_id] = data
        return {"id": file_id, "object": "file", "bytes": len(data), "created_at": 0,
                "filename": "batch.jsonl", "purpose": purpose, "status": "processed"}  # fmt: skip

    def create_batch(self, body: dict) -> dict:
        with self.lock:
            batch_id = f"batch-{len(self.batches) + 1}"
            self.batches[batch_id] = {
                "id": batch_id, "object": "batch", "endpoint": body["endpoint"],
                "input_file_id": body["input_file_id"], "errors": None,
                "completion_window": body["completion_window"], "status": "validating",
                "created_at": 0, "output_file_id": None, "error_file_id": None,
                "request_counts": {"total": 0, "completed": 0, "failed": 0}, "polls": 0,
            }  # fmt: skip
            return self._public(batch_id)

    def retrieve_batch(self, batch_id: str) -> dict:
        with self.lock:
            batch = self.batches[batch_id]
            batch["polls"] += 1
            finish = batch["status"] != "completed" and batch["polls"] >= self.batch_polls
            if not finish and batch["status"] != "completed":
                batch["status"] = "in_progress"
        if finish:
            self._complete(batch)
        with self.lock:
            return self._public(batch_id)

    def _complete(self, batch: dict) -> None:
        """Answer every line of the batch's input file; write its output and error files."""
        lines = self.files[batch["input_file_id"]].decode().splitlines()
        out, errors = [], []
        for line in lines:
            request = json.loads(line)
            status, payload, _, _ = self.answer(request["body"], None, batch["id"])
            record = {"id": f"r-{len(out) + len(errors)}", "custom_id": request["custom_id"]}
            if status == 200:
                out.append({**record, "response": {"status_code": 200, "body": payload}})
            else:
                errors.append({**record, "response": {"status_code": status, "body": payload}})
        with self.lock:
            for name, rows in (("output_file_id", out), ("error_file_id", errors)):
                if rows:
                    file_id = f"file-{len(self.files) + 1}"
                    self.files[file_id] = "".join(json.dumps(r) + "\n" for r in rows).encode()
                    batch[name] = file_id
            batch["status"] = "completed"
            batch["request_counts"] = {
                "total": len(lines), "completed": len(out), "failed": len(errors),
            }  # fmt: skip

    def _public(self, batch_id: str) -> dict:
        return {k: v for k, v in self.batches[batch_id].items() if k != "polls"}


@pytest.fixture
def server() -> Iterator[FakeOpenAI]:
    """A running `FakeOpenAI`."""
    running = FakeOpenAI()
    yield running
    running.httpd.shutdown()
