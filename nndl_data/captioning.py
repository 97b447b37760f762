"""Flickr8k with Persian captions (and its official English captions) for the captioning system, plus the text pipeline.

Layout (`captions/flickr8k_fa` under the data root):

    images/<flickr8k name>.jpg        3,546 Flickr8k images, 224×224 (aspect not kept)
    captions_fa_en.txt                `<image>.jpg____<id>|||<Persian>|||<English>`, about five per image
    captions_en_flickr8k.txt          official English captions, CSV `image,caption`, all 8,091 images

Text (spec §2.3 with the §3.2 fixes): the Persian captions are machine translations and carry artefacts of the
English quotes (the word «نقل قول», "quote", and stray `"`/`«»`/`#`), which `clean_caption` removes. Then hazm's
`Normalizer(correct_spacing=False)` (so «می رسد» stays two tokens, as in the report's Table 3; digits become
Persian), punctuation ، ؟ ! . # @ $ % removed, and hazm's `WordTokenizer(join_verb_parts=True)` (the report's
«نشسته_است»). English: lower-case words. Vocabulary: words seen at least `min_frequency` times (the report's 3)
in the training captions, after the fixed specials 0 `<pad>`, 1 `<start>`, 2 `<end>`, 3 `<unk>`.

Split: seeded 80/10/10 by image (`split_images`); every caption of an image stays in its split, and scoring uses
all of an image's references.
"""

from __future__ import annotations

import collections
import csv
import dataclasses
import functools
import hashlib
import random
import re
import threading
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from nndl_data import dataset_dir

FLICKR8K_FA = "captions/flickr8k_fa"
LANGUAGES = ("fa", "en")
PAD, START, END, UNK = "<pad>", "<start>", "<end>", "<unk>"
SPECIALS = (PAD, START, END, UNK)
PAD_ID, START_ID, END_ID, UNK_ID = range(4)
SPLIT_FRACTIONS = (0.8, 0.1, 0.1)
IMAGE_SIZE = 224
CITATION = ("Flickr8k: M. Hodosh, P. Young, J. Hockenmaier, \"Framing Image Description as a Ranking Task: Data, Models and "
            "Evaluation Metrics\", JAIR 47, 2013. Research and education use only (the dataset's terms). Persian captions: "
            "machine translations (rzamarefat/Captioner).")

_QUOTE_WORD = re.compile(r"نقل\s*قول")  # «نقل قول» = "quote": the translator's rendering of an English `"`
_STRAY = re.compile(r"[\"“”«»'`#]")
_PUNCTUATION = re.compile(r"[،؛؟!.,;:?\"'«»#@$%^&*()\[\]{}<>/\\|~_+=\-…]")
_SPACES = re.compile(r"\s+")
_ENGLISH_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?|'[a-z]+")
_NOT_ENGLISH = re.compile(r"[^a-z0-9' ]")


def clean_caption(text: str) -> str:
    """Remove the translation artefacts of quotes («نقل قول», stray quote marks and #) and extra spaces."""
    return _SPACES.sub(" ", _STRAY.sub(" ", _QUOTE_WORD.sub(" ", text))).strip()


class _Hazm:
    """hazm's normaliser and tokenizer, built once (importing hazm takes a second); guarded by a lock because
    hazm keeps no documented thread-safety promise and the tab serves requests in threads."""

    def __init__(self):
        import hazm

        self.normalizer = hazm.Normalizer(correct_spacing=False)
        self.tokenizer = hazm.WordTokenizer(join_verb_parts=True)
        self.lock = threading.Lock()


@functools.cache
def _hazm() -> _Hazm:
    return _Hazm()


def normalize(text: str, language: str = "fa") -> str:
    """Raw caption → the normalised text the tokenizer reads (artefacts and punctuation removed)."""
    if language == "en":
        return _SPACES.sub(" ", _NOT_ENGLISH.sub(" ", text.lower())).strip()
    hazm = _hazm()
    with hazm.lock:
        normalised = hazm.normalizer.normalize(clean_caption(text))
    return _SPACES.sub(" ", _PUNCTUATION.sub(" ", normalised)).strip()


def tokenize(text: str, language: str = "fa", normalised: bool = False) -> list[str]:
    """Raw (or already `normalize`d) caption → word tokens: hazm's WordTokenizer for Persian, words for English."""
    text = text if normalised else normalize(text, language)
    if language == "en":
        return _ENGLISH_WORD.findall(text)
    hazm = _hazm()
    with hazm.lock:
        tokens = hazm.tokenizer.tokenize(text)
    return [token for token in tokens if token.strip() and not _PUNCTUATION.fullmatch(token)]


def build_vocabulary(token_lists, min_frequency: int = 3) -> tuple[str, ...]:
    """Specials, then every word seen ≥ min_frequency times, most frequent first (ties alphabetical)."""
    counts = collections.Counter(token for tokens in token_lists for token in tokens)
    words = sorted((word for word, count in counts.items() if count >= min_frequency and word not in SPECIALS),
                   key=lambda word: (-counts[word], word))
    return SPECIALS + tuple(words)


def encode(tokens: list[str], vocabulary: tuple[str, ...] | dict[str, int]) -> list[int]:
    """`<start>` ids… `<end>`; words outside the vocabulary become `<unk>`."""
    index = vocabulary if isinstance(vocabulary, dict) else {word: i for i, word in enumerate(vocabulary)}
    return [START_ID] + [index.get(token, UNK_ID) for token in tokens] + [END_ID]


def decode(ids, vocabulary: tuple[str, ...]) -> list[str]:
    """Ids → words, stopping at `<end>`, without `<start>`/`<pad>`."""
    words = []
    for i in ids:
        i = int(i)
        if i == END_ID:
            break
        if i not in (START_ID, PAD_ID):
            words.append(vocabulary[i])
    return words


def pad_batch(sequences: list[list[int]], max_length: int | None = None) -> torch.Tensor:
    """(B, T) long tensor, right-padded with `<pad>`; sequences longer than max_length are cut (keeping `<end>`)."""
    length = max(len(s) for s in sequences) if max_length is None else min(max_length, max(len(s) for s in sequences))
    batch = torch.full((len(sequences), length), PAD_ID, dtype=torch.long)
    for row, sequence in enumerate(sequences):
        sequence = sequence if len(sequence) <= length else sequence[: length - 1] + [END_ID]
        batch[row, : len(sequence)] = torch.tensor(sequence)
    return batch


@dataclasses.dataclass
class Captions:
    """Every caption of one language, by image: raw text (and, for Persian, the English original)."""

    language: str
    raw: dict[str, list[str]]  # image name → raw captions
    english: dict[str, list[str]]  # image name → English originals (the same order for Persian; the captions for English)

    @property
    def images(self) -> list[str]:
        return sorted(self.raw)


def read_persian_captions(root: str | Path | None = None) -> Captions:
    """`captions_fa_en.txt`: image → Persian captions and their English originals (in file order)."""
    path = dataset_dir(FLICKR8K_FA, root) / "captions_fa_en.txt"
    persian, english = collections.defaultdict(list), collections.defaultdict(list)
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        key, fa, en = line.split("|||")
        image = key.split("____")[0]
        persian[image].append(fa.strip())
        english[image].append(en.strip().strip('"').replace('""', '"').strip())
    return Captions("fa", dict(persian), dict(english))


def read_english_captions(root: str | Path | None = None, images: set[str] | None = None) -> Captions:
    """`captions_en_flickr8k.txt` (official, CSV), kept to `images` (default: those with Persian captions)."""
    directory = dataset_dir(FLICKR8K_FA, root)
    images = images if images is not None else set(read_persian_captions(root).raw)
    captions = collections.defaultdict(list)
    with open(directory / "captions_en_flickr8k.txt", newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            if row["image"] in images:
                captions[row["image"]].append(row["caption"].strip())
    return Captions("en", dict(captions), dict(captions))


def read_captions(language: str, root: str | Path | None = None) -> Captions:
    if language not in LANGUAGES:
        raise ValueError(f"language must be one of {LANGUAGES}, not {language!r}")
    return read_persian_captions(root) if language == "fa" else read_english_captions(root)


def split_images(images: list[str], seed: int = 0, fractions=SPLIT_FRACTIONS) -> dict[str, list[str]]:
    """Seeded split by image: {"train", "validation", "test"} → sorted names (80/10/10 by default)."""
    shuffled = sorted(images)
    random.Random(seed).shuffle(shuffled)
    n_train = round(fractions[0] * len(shuffled))
    n_validation = round(fractions[1] * len(shuffled))
    return {"train": sorted(shuffled[:n_train]), "validation": sorted(shuffled[n_train : n_train + n_validation]),
            "test": sorted(shuffled[n_train + n_validation :])}


def image_path(name: str, root: str | Path | None = None) -> Path:
    return dataset_dir(FLICKR8K_FA, root) / "images" / name


def load_image(path: str | Path, size: int = IMAGE_SIZE) -> Image.Image:
    """A dataset image as RGB at `size` (the files are already 224 px; bicubic like the report otherwise)."""
    with Image.open(path) as image:
        image = image.convert("RGB")
    return image if image.size == (size, size) else image.resize((size, size), Image.BICUBIC)


def image_tensor(image: Image.Image, size: int = IMAGE_SIZE) -> torch.Tensor:
    """PIL → (3, size, size) float in [0, 1] (bicubic resize, aspect not kept, like the dataset's own images)."""
    image = image.convert("RGB")
    if image.size != (size, size):
        image = image.resize((size, size), Image.BICUBIC)
    return torch.from_numpy(np.asarray(image, dtype=np.uint8).copy()).permute(2, 0, 1).float().div(255)


def file_digest(path: str | Path) -> str:
    """md5 of a file's bytes: how the tab recognises an uploaded copy of a test image."""
    return hashlib.md5(Path(path).read_bytes()).hexdigest()


@dataclasses.dataclass
class TokenisedSplit:
    """One split's captions as token lists, with each caption's image index (into `images`)."""

    images: list[str]
    tokens: list[list[str]]  # one per caption
    image_index: list[int]  # caption → position of its image in `images`
    references: list[list[list[str]]]  # image → all its tokenised captions (for BLEU)


def tokenised_splits(captions: Captions, split: dict[str, list[str]]) -> dict[str, TokenisedSplit]:
    result = {}
    for name, images in split.items():
        tokens, image_index, references = [], [], []
        for position, image in enumerate(images):
            image_tokens = [tokenize(text, captions.language) for text in captions.raw[image]]
            image_tokens = [t for t in image_tokens if t]
            references.append(image_tokens)
            tokens.extend(image_tokens)
            image_index.extend([position] * len(image_tokens))
        result[name] = TokenisedSplit(images, tokens, image_index, references)
    return result


ENCODER_NAME = "efficientnet_lite0"


def feature_cache_path(root: str | Path | None = None) -> Path:
    from nndl_data import user_cache_dir

    directory = dataset_dir(FLICKR8K_FA, root)
    tag = hashlib.md5(str(directory.resolve()).encode()).hexdigest()[:8]
    return user_cache_dir("captioning") / f"features-{ENCODER_NAME}-{IMAGE_SIZE}-{tag}.npy"


def image_features(images: list[str], root: str | Path | None = None, batch_size: int = 32, progress: bool = True) -> np.ndarray:
    """The frozen encoder's annotations (N, 49, 1280) fp16 for `images`, computed once for every image of the
    dataset and cached in the user cache (≈ 445 MB; a few minutes on one core). Rows follow `images`."""
    path = feature_cache_path(root)
    every = sorted(p.name for p in (dataset_dir(FLICKR8K_FA, root) / "images").glob("*.jpg"))
    names_path = path.with_suffix(".names.txt")
    if not path.exists() or not names_path.exists() or names_path.read_text().split("\n") != every:
        from models.captioning import encode_images
        from models.imagenet import imagenet_classifier

        encoder = imagenet_classifier()
        features = np.lib.format.open_memmap(path.with_suffix(".tmp.npy"), mode="w+", dtype=np.float16, shape=(len(every), 49, 1280))
        starts = range(0, len(every), batch_size)
        if progress:
            from tqdm.auto import tqdm

            starts = tqdm(starts, desc="caching image features")
        for start in starts:
            batch = torch.stack([image_tensor(load_image(image_path(name, root))) for name in every[start : start + batch_size]])
            features[start : start + len(batch)] = encode_images(encoder, batch).numpy().astype(np.float16)
        features.flush()
        del features
        path.with_suffix(".tmp.npy").replace(path)
        names_path.write_text("\n".join(every))
    every_features = np.load(path, mmap_mode="r")
    position = {name: i for i, name in enumerate(every)}
    return np.ascontiguousarray(every_features[[position[name] for name in images]])


SMOOTHING = "nltk SmoothingFunction().method1 (ε = 0.1 added to zero n-gram counts)"
BLEU_WEIGHTS = {1: (1.0,), 2: (0.5, 0.5), 3: (1 / 3, 1 / 3, 1 / 3), 4: (0.25, 0.25, 0.25, 0.25)}


def corpus_bleu(references: list[list[list[str]]], hypotheses: list[list[str]]) -> dict[str, float]:
    """Corpus BLEU-1..4 (Papineni et al. 2002; nltk, `SMOOTHING`) of token lists against all references of each image."""
    from nltk.translate.bleu_score import SmoothingFunction, corpus_bleu as nltk_corpus_bleu

    smoothing = SmoothingFunction().method1
    return {f"bleu{n}": float(nltk_corpus_bleu(references, hypotheses, weights=weights, smoothing_function=smoothing))
            for n, weights in BLEU_WEIGHTS.items()}


def sentence_bleu(references: list[list[str]], hypothesis: list[str]) -> dict[str, float]:
    """BLEU-1..4 of one caption against its image's references (same smoothing)."""
    from nltk.translate.bleu_score import SmoothingFunction, sentence_bleu as nltk_sentence_bleu

    smoothing = SmoothingFunction().method1
    return {f"bleu{n}": float(nltk_sentence_bleu(references, hypothesis, weights=weights, smoothing_function=smoothing))
            for n, weights in BLEU_WEIGHTS.items()}


def corpus_chrf(references: list[list[str]], hypotheses: list[str]) -> float:
    """Corpus chrF (Popović 2015; character 6-grams, β = 2, torchmetrics) of caption strings, all references."""
    from torchmetrics.functional.text import chrf_score

    return float(chrf_score(hypotheses, references, n_char_order=6, n_word_order=0, beta=2.0))
