"""OCR with tesseract (Apache-2.0; a system binary, called as a subprocess) for scans and photos.

PDF pages are rendered with pypdfium2 (BSD/Apache, the ``ocr`` extra). Nothing leaves the machine.
Install: ``apt-get install tesseract-ocr tesseract-ocr-rus`` (Debian/Ubuntu) and
``pip install 'spravka[ocr]'``.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from spravka.core.errors import ConfigError, LoaderError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp", ".gif")


@dataclass(frozen=True, slots=True)
class OcrText:
    text: str
    pages: int
    seconds: float


class Tesseract:
    def __init__(self, languages: str = "rus+eng", *, psm: int = 4, dpi: int = 300, timeout_s: float = 120,
                 binary: str = "tesseract") -> None:
        self.languages, self.psm, self.dpi, self.timeout_s, self.binary = languages, psm, dpi, timeout_s, binary

    def available(self) -> bool:
        return shutil.which(self.binary) is not None

    def _require(self) -> str:
        exe = shutil.which(self.binary)
        if exe is None:
            raise ConfigError("OCR needs tesseract, which is not installed",
                              hint="apt-get install tesseract-ocr tesseract-ocr-rus (or set extract.ocr_binary)")
        return exe

    def image(self, path: Path) -> str:
        exe = self._require()
        try:
            done = subprocess.run([exe, str(path), "stdout", "-l", self.languages, "--psm", str(self.psm)],
                                  capture_output=True, timeout=self.timeout_s, check=False)
        except subprocess.TimeoutExpired:
            raise LoaderError(f"OCR took over {self.timeout_s:.0f} s", reason="ocr_timeout") from None
        if done.returncode != 0:
            err = done.stderr.decode("utf-8", "replace").strip().splitlines()
            msg = err[-1] if err else f"exit code {done.returncode}"
            if "Failed loading language" in done.stderr.decode("utf-8", "replace"):
                raise ConfigError(f"tesseract has no '{self.languages}' language data: {msg}",
                                  hint="apt-get install tesseract-ocr-rus tesseract-ocr-eng")
            raise LoaderError(f"OCR failed: {msg}", reason="corrupt")
        return done.stdout.decode("utf-8", "replace")

    def read(self, path: Path, *, max_pages: int = 50) -> OcrText:
        """Text of an image or of every page of a PDF (rendered at ``dpi``)."""
        t0 = time.perf_counter()
        pages = self.pages(path, max_pages=max_pages)
        return OcrText("\n\f".join(pages), len(pages), time.perf_counter() - t0)

    def pages(self, path: Path, *, max_pages: int = 50) -> list[str]:
        """The text of each page (an image is one page)."""
        if path.suffix.lower() in IMAGE_SUFFIXES:
            return [self.image(path)]
        if path.suffix.lower() != ".pdf":
            raise LoaderError(f"OCR reads images and PDFs, not '{path.suffix}'", reason="unsupported")
        self._require()
        try:
            import pypdfium2 as pdfium
        except ImportError:
            raise ConfigError("OCR of PDF pages needs pypdfium2", hint="pip install 'spravka[ocr]'") from None
        try:
            pdf = pdfium.PdfDocument(str(path))
        except Exception as e:  # noqa: BLE001 - pdfium raises its own error types on corrupt files
            raise LoaderError(f"cannot open the PDF: {e}", reason="corrupt") from e
        texts = []
        try:
            n = len(pdf)
            if n > max_pages:
                raise LoaderError(f"the PDF has {n} pages, over the OCR limit of {max_pages}", reason="too_large",
                                  hint="raise extract.ocr_max_pages or split the file")
            with tempfile.TemporaryDirectory(prefix="spravka-ocr-") as tmp:
                for i in range(n):
                    img = pdf[i].render(scale=self.dpi / 72).to_pil()
                    png = Path(tmp) / f"p{i}.png"
                    img.save(png)
                    texts.append(self.image(png))
        finally:
            pdf.close()
        return texts
