"""demos.uploads.read_image: every bad file gets a clear UploadError, every odd-but-valid one an 8-bit image."""

import pytest

from demos.uploads import UploadError, read_image
from tests.bad_uploads import MUST_ACCEPT, MUST_REFUSE, bad_image_files


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    return bad_image_files(tmp_path_factory.mktemp("uploads"))


@pytest.mark.parametrize("case", MUST_REFUSE)
def test_bad_files_are_refused_with_a_message(files, case):
    with pytest.raises(UploadError) as error:
        read_image(files[case])
    assert len(str(error.value)) > 15 and "Traceback" not in str(error.value)


@pytest.mark.parametrize("case", MUST_ACCEPT)
@pytest.mark.parametrize("mode", ["RGB", "L"])
def test_odd_modes_are_converted(files, case, mode):
    image = read_image(files[case], mode=mode)
    assert image.mode == mode and image.size == (40, 40)


def test_huge_image_is_refused_before_decoding(files):
    import resource

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(UploadError, match="megapixels"):
        read_image(files["huge"])
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 200_000  # KiB: no 1.2 GB decode


def test_none_asks_for_an_image():
    with pytest.raises(UploadError, match="upload"):
        read_image(None)
