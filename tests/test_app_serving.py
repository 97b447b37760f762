"""What a public Space must refuse, checked on the launched app (`app_url`: `python app.py` with the real checkpoints):
files outside the tabs' examples are not served, uploads larger than the largest real input are refused with a
message, and the API lists only the tabs' named endpoints."""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from demos import uploads
from nndl_data import DatasetMissing, data_root, user_cache_dir


def _status(app_url: str, path: str | Path) -> int:
    url = f"{app_url}gradio_api/file={urllib.parse.quote(str(path))}"
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def test_only_the_example_files_are_served(app_url):
    from demos import trivae

    try:
        root = data_root()
    except DatasetMissing:
        pytest.skip("no data root here")
    slices = trivae.example_slices()
    if not slices:
        pytest.skip("LGG slices not under the data root")
    example, _ = slices[0]
    assert _status(app_url, example) == 200  # a file a tab shows
    neighbour = next(path for path in sorted(Path(example).parent.glob("*.png")) if str(path) not in {p for pair in slices for p in pair})
    assert _status(app_url, neighbour) in (403, 404)  # another slice of the same patient
    assert _status(app_url, f"{Path(example).parent}/../{Path(example).parent.name}/{neighbour.name}") in (403, 404)  # the same, by a detour
    with pytest.raises(urllib.error.HTTPError) as refused:  # Gradio's older route to the same files
        urllib.request.urlopen(f"{app_url}gradio_api/file/{urllib.parse.quote(str(neighbour))}", timeout=30)
    assert refused.value.code in (403, 404)
    readme = root / "README.md"
    if readme.exists():
        assert _status(app_url, readme) in (403, 404)
    assert _status(app_url, "/etc/passwd") in (403, 404)
    assert _status(app_url, Path(__file__).resolve()) in (403, 404)  # the repository
    stray = user_cache_dir("examples") / "not-an-example.txt"
    stray.write_text("written by the test: the example cache folder is not served as a whole")
    try:
        assert _status(app_url, stray) in (403, 404)
    finally:
        stray.unlink()


def test_an_upload_larger_than_a_nifti_volume_is_refused_with_a_message(app_url, tmp_path):
    """The limit fits the largest real input (an uncompressed float32 BraTS volume, 240×240×155, 35.7 MB)."""
    assert uploads.MAX_BYTES >= 240 * 240 * 155 * 4 + 352
    body = os.urandom(uploads.MAX_BYTES + 1024)
    boundary = "nndl-test-boundary"
    payload = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"scan.nii\"\r\n"
               "Content-Type: application/octet-stream\r\n\r\n").encode() + body + f"\r\n--{boundary}--\r\n".encode()
    request = urllib.request.Request(f"{app_url}gradio_api/upload", data=payload, method="POST",
                                     headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=120)
    assert refused.value.code == 413
    assert "maximum allowed size" in refused.value.read().decode()
    with urllib.request.urlopen(f"{app_url}config", timeout=30) as response:
        assert json.load(response)["max_file_size"] == uploads.MAX_BYTES  # the browser refuses it before sending

    from gradio_client import Client, handle_file

    large = tmp_path / "scan.nii"
    large.write_bytes(body[: uploads.MAX_BYTES + 1])
    client = Client(app_url, verbose=False)
    with pytest.raises(ValueError, match="exceeds the maximum file size"):
        client.predict(handle_file(str(large)), None, -1, "Tri-VAE, coarse noise", 0.1, 5, api_name="/trivae")


def test_the_api_lists_the_tabs_named_endpoints_only(app_url):
    from gradio_client import Client

    from demos import overview

    names = Client(app_url, verbose=False).view_api(print_info=False, return_format="dict")["named_endpoints"]
    assert {"/attacks", "/cyclegan", "/pixelda", "/pixelda_sketch", "/trivae", "/trivae_noise"} <= set(names)
    strays = [name for name in names if name.lstrip("/").split("_")[0] not in overview.SYSTEMS]
    assert not strays, f"endpoints not named after a tab's slug (internal events must be private): {strays}"
