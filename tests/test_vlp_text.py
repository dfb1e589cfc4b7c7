"""Text side of vision-language pre-training: MedPix datalist, WordPiece tokenizer, IU X-ray corpus, TokenizeTextd."""

from __future__ import annotations

import csv
import pickle
import subprocess
import sys

import pytest
import torch
from conftest import DATA, minilm_package, require

from monai_synpriv.data.medpix import MEDPIX_LABELS, prepare_medpix_datalist
from monai_synpriv.data.text import SPECIAL_TOKENS, TextTokenizer, read_iu_xray_reports, text_corpus
from monai_synpriv.transforms.text import TokenizeTextd

MEDPIX = DATA / "medpix2_subset"
IU_REPORTS = DATA / "iu_xray_reports" / "indiana_reports.csv"


@pytest.fixture(scope="module")
def medpix() -> dict:
    return prepare_medpix_datalist(require(MEDPIX))


@pytest.fixture(scope="module")
def reports() -> list[str]:
    return read_iu_xray_reports(require(IU_REPORTS))


@pytest.fixture(scope="module")
def fitted(medpix, reports) -> TextTokenizer:
    return TextTokenizer.fit(text_corpus(medpix["training"], reports), vocab_size=4000)


@pytest.fixture(scope="module")
def minilm() -> TextTokenizer:
    gt = minilm_package()
    return TextTokenizer.from_file(gt.MODEL_DIR)


def test_medpix_datalist(medpix, tmp_path):
    assert [len(medpix[s]) for s in ("training", "validation", "test")] == [332, 197, 200]
    cases = {s: {i["case"] for i in medpix[s]} for s in ("training", "validation", "test")}
    assert not cases["training"] & cases["validation"]
    assert not cases["training"] & cases["test"]
    assert not cases["validation"] & cases["test"]
    names = medpix["label_names"]
    assert names["modality"] == ["CT", "MR"] and names["plane"] == ["Axial", "Coronal", "Sagittal", "Other"]
    assert names["region"] == sorted(names["region"]) and len(names["region"]) == 5
    assert "Siragusa" in medpix["source"]
    items = medpix["training"] + medpix["validation"] + medpix["test"]
    assert sum(i["modality"] == 0 for i in items) == 448  # CT 448, MR 281 (data README)
    for item in items:
        assert item["image"].startswith("/") and item["text"] == " ".join(item["text"].split()) and item["text"]
        for label in MEDPIX_LABELS:
            assert 0 <= item[label] < len(names[label])
    out = tmp_path / "medpix.json"
    assert prepare_medpix_datalist(MEDPIX, output=out) == __import__("json").loads(out.read_text())


def _copy_medpix(tmp_path, edit):
    """A copy of pairs.tsv (images linked to the real folder) with ``edit(rows)`` applied."""
    with open(MEDPIX / "pairs.tsv", newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f, delimiter="\t")
        fields, rows = reader.fieldnames, list(reader)
    edit(rows)
    root = tmp_path / "medpix"
    root.mkdir(parents=True)
    (root / "images").symlink_to(MEDPIX / "images")
    with open(root / "pairs.tsv", "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=fields, delimiter="\t")
        writer.writeheader()
        writer.writerows(rows)
    return root


def test_medpix_datalist_errors(tmp_path):
    require(MEDPIX)

    def missing_image(rows):
        rows[5]["image"] = "MPX_does_not_exist.png"

    with pytest.raises(FileNotFoundError, match="MPX_does_not_exist.png"):
        prepare_medpix_datalist(_copy_medpix(tmp_path / "a", missing_image))

    def empty_caption(rows):
        rows[3]["caption"] = "   "

    with open(MEDPIX / "pairs.tsv", newline="", encoding="utf-8") as f:
        fourth = list(csv.DictReader(f, delimiter="\t"))[3]["image"]
    with pytest.raises(ValueError, match=f"{fourth}.*empty caption"):
        prepare_medpix_datalist(_copy_medpix(tmp_path / "b", empty_caption))

    def leak(rows):
        other = next(r for r in rows if r["split"] != rows[0]["split"])
        other["U_id"] = rows[0]["U_id"]

    with pytest.raises(ValueError, match="both"):
        prepare_medpix_datalist(_copy_medpix(tmp_path / "c", leak))
    with pytest.raises(FileNotFoundError, match="pairs.tsv"):
        prepare_medpix_datalist(tmp_path / "nowhere")


def test_iu_reports(reports):
    assert 3000 < len(reports) <= 3851
    assert all(r.strip() and "XXXX" not in r for r in reports)


def test_fitted_tokenizer_round_trip(fitted, medpix, tmp_path):
    assert 1000 < fitted.vocab_size <= 4000 and fitted.pad_id == 0
    assert [fitted.token_to_id(t) for t in ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")] == [0, 1, 2, 3, 4]
    texts = [i["text"] for i in medpix["test"][:32]]
    path = fitted.save(tmp_path / "tok" / "tokenizer.json")
    loaded = TextTokenizer.from_file(tmp_path / "tok")
    a, b = fitted(texts), loaded(texts)
    assert torch.equal(a["input_ids"], b["input_ids"]) and torch.equal(a["attention_mask"], b["attention_mask"])
    assert a["input_ids"].dtype == torch.long and a["input_ids"].shape[0] == 32
    assert (a["input_ids"][:, 0] == 2).all()  # [CLS]
    lengths = a["attention_mask"].sum(1)
    assert a["input_ids"].shape[1] == lengths.max() <= 64
    assert (a["input_ids"][a["attention_mask"] == 0] == 0).all()
    assert fitted.decode(a["input_ids"][0]).startswith(texts[0].lower().split()[0])
    assert pickle.loads(pickle.dumps(loaded))(texts)["input_ids"].equal(a["input_ids"])  # DataLoader workers
    with pytest.raises(FileNotFoundError, match="no_tokenizer_here"):
        TextTokenizer.from_file(tmp_path / "no_tokenizer_here")
    assert path.endswith("tokenizer.json")


def test_fit_gives_the_same_tokenizer_in_every_process(tmp_path):
    """HF ``tokenizers`` numbers the fitted WordPiece in the hash-map order of the process (huggingface/tokenizers#1794):
    two processes fitting the same corpus gave different ids for the same tokens (4 of 4 fits differed), so a scratch
    text encoder trained differently from run to run. The fit renumbers the token set canonically; the saved files of
    three processes (separate Rust hash seeds) must be identical, and tokenize like an un-renumbered fit."""
    script = tmp_path / "fit.py"
    script.write_text(
        "import sys\n"
        "from monai_synpriv.data.text import TextTokenizer, read_iu_xray_reports\n"
        f"TextTokenizer.fit(read_iu_xray_reports({str(require(IU_REPORTS))!r}), vocab_size=1000).save(sys.argv[1])\n"
    )
    files = [tmp_path / f"tokenizer_{i}.json" for i in range(3)]
    for f in files:
        subprocess.run([sys.executable, str(script), str(f)], check=True, cwd=tmp_path)
    texts = [f.read_text() for f in files]
    assert texts[0] == texts[1] == texts[2]
    tok = TextTokenizer.from_file(files[0])
    assert tok.vocab_size == 1000
    vocab = tok.tokenizer.get_vocab()
    assert [vocab[t] for t in SPECIAL_TOKENS] == [0, 1, 2, 3, 4]
    assert sorted(vocab, key=vocab.get)[5:] == sorted(t for t in vocab if vocab[t] >= 5)
    # the renumbering changes ids only, never the tokens a text splits into
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers

    raw = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    raw.normalizer = normalizers.BertNormalizer(lowercase=True, strip_accents=None)
    raw.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    raw.train_from_iterator(
        read_iu_xray_reports(IU_REPORTS),
        trainers.WordPieceTrainer(vocab_size=1000, min_frequency=2, special_tokens=list(SPECIAL_TOKENS)),
    )
    report = read_iu_xray_reports(IU_REPORTS)[7] + " pneumothoraces xyzzy"
    assert tok.tokenizer.encode(report).tokens[1:-1] == raw.encode(report).tokens


def test_minilm_tokenizer_and_truncation(minilm):
    ids = minilm(["chest ct"])["input_ids"][0].tolist()
    assert ids[0] == 101 and ids[-1] == 102 and len(ids) == 4  # [CLS] chest ct [SEP], no fixed 128 padding
    long_text = "the lungs are clear without focal consolidation " * 20
    out = minilm(["chest ct", long_text], max_length=16)
    assert out["input_ids"].shape == (2, 16)
    assert out["input_ids"][1, -1] == 102 and out["attention_mask"][1].sum() == 16
    assert out["attention_mask"][0].tolist() == [1] * 4 + [0] * 12
    n = minilm.count_tokens([long_text])[0]
    with pytest.raises(ValueError, match=rf"index 1 has {n} tokens"):
        minilm(["chest ct", long_text], max_length=16, truncation="error")
    with pytest.raises(ValueError, match="index 2 is empty"):
        minilm(["chest ct", "mr", "  \n"])
    with pytest.raises(ValueError, match="caption of b.png"):
        minilm(["chest ct", ""], names=["caption of a.png", "caption of b.png"])
    with pytest.raises(ValueError, match="index 0 is a int"):
        minilm([3])


def test_tokenize_textd(fitted, medpix, tmp_path):
    path = fitted.save(tmp_path)
    item = medpix["training"][0]
    for tokenizer in (fitted, path):
        out = TokenizeTextd("text", tokenizer=tokenizer, max_length=48)(item)
        assert out["text_ids"].shape == out["text_mask"].shape == (48,)
        assert out["text_ids"].dtype == out["text_mask"].dtype == torch.long
        assert out["text_ids"][0] == 2 and out["text"] == item["text"]
    batch = torch.utils.data.default_collate(
        [TokenizeTextd("text", fitted, max_length=48)(i) for i in medpix["test"][:4]]
    )
    assert batch["text_ids"].shape == (4, 48)
    with pytest.raises(ValueError, match=rf"'text' of {item['image']}.*empty"):
        TokenizeTextd("text", fitted)(dict(item, text=""))
    with pytest.raises(ValueError, match=r"'text'.*tokens, more than max_length=8"):
        TokenizeTextd("text", fitted, max_length=8, truncation="error")(item)
