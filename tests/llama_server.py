"""A real llama.cpp server for tests and benchmarks: GGUF conversion and a server process.

``convert_to_gguf`` runs llama.cpp's own ``convert_hf_to_gguf.py`` (vendored under
``tests/vendor/llama_cpp``, see its README) on a transformers checkpoint; ``LlamaServer`` starts
``python -m llama_cpp.server`` (llama-cpp-python's OpenAI-compatible server) on a free loopback
port and stops it on exit. Nothing here imitates a server: every request goes to llama.cpp.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

VENDOR = Path(__file__).resolve().parent / "vendor" / "llama_cpp"

# The converter recognises a BPE pre-tokenizer by hashing how it splits a fixed text; a tokenizer
# trained here has no known hash, though its pre-tokenizer is GPT-2's. Name it explicitly.
_CONVERT = """
import runpy, sys
vendor = sys.argv[1]
sys.path[:0] = [vendor, vendor + "/gguf-py"]
import conversion.base
conversion.base.TextModel.get_vocab_base_pre = lambda self, tokenizer: "gpt-2"
sys.argv = [vendor + "/convert_hf_to_gguf.py"] + sys.argv[2:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def convert_to_gguf(model_dir: str | Path, out_path: str | Path, outtype: str = "f32") -> Path:
    """``convert_hf_to_gguf.py MODEL --outtype f32 --outfile OUT`` in a subprocess."""
    out_path = Path(out_path)
    done = subprocess.run(
        [sys.executable, "-c", _CONVERT, str(VENDOR), str(model_dir), "--outtype", outtype, "--outfile", str(out_path)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    if done.returncode != 0 or not out_path.is_file():
        raise RuntimeError(f"convert_hf_to_gguf.py failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return out_path


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LlamaServer:
    """``python -m llama_cpp.server --model GGUF --logits_all true`` on 127.0.0.1; a context manager.

    ``logits_all`` makes llama.cpp keep the logits of every prompt position, which echoed prompt
    log-probabilities need; ``logits_all=False`` starts a server that cannot give them (for the
    error-path test)."""

    def __init__(
        self,
        gguf: str | Path,
        *,
        port: int | None = None,
        n_ctx: int = 256,
        n_threads: int = 1,
        logits_all: bool = True,
        model_alias: str = "tiny",
        log_path: str | Path | None = None,
    ):
        self.gguf, self.port = Path(gguf), port or free_port()
        self.n_ctx, self.n_threads, self.logits_all, self.alias = n_ctx, n_threads, logits_all, model_alias
        self.log_path = Path(log_path) if log_path else self.gguf.with_suffix(f".{self.port}.log")
        self.proc: subprocess.Popen | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self, timeout: float = 120.0) -> "LlamaServer":
        import httpx

        cmd = [
            sys.executable,
            "-m",
            "llama_cpp.server",
            "--model",
            str(self.gguf),
            "--model_alias",
            self.alias,
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--n_ctx",
            str(self.n_ctx),
            "--n_threads",
            str(self.n_threads),
            "--n_threads_batch",
            str(self.n_threads),
            "--logits_all",
            "true" if self.logits_all else "false",
            "--verbose",
            "false",
        ]
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"llama.cpp server exited ({self.proc.returncode}):\n{self.log_tail()}")
            try:
                if httpx.get(self.base_url + "/models", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"llama.cpp server did not answer within {timeout:.0f} s:\n{self.log_tail()}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        if self.proc is not None:
            self._log.close()
        self.proc = None

    def log_tail(self, n: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-n:]
        except OSError:
            return ""

    def __enter__(self) -> "LlamaServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
