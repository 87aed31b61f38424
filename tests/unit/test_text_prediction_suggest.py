"""The suggestion engine's generation: positions, greedy continuations with the KV cache, the
batched path against the one-at-a-time and cache-free computations, record files."""

from __future__ import annotations

import io
import json
import random
from pathlib import Path

import pytest
import sentencepiece as spm
import torch
from torch import Tensor

from nasflow.core.errors import ConfigError, DataError
from nasflow.lts.model import GPTDecoder, KVCache
from nasflow.space.gpt import GPTArch
from nasflow.text_prediction.suggest import (
    PositionRecord,
    SuggestionRecords,
    collect,
    positions_of,
)

TINY = GPTArch.uniform(1, 8, 16, 2)


class FakeProcessor:
    """Whole-word pieces ('▁word') and suffix pieces, longest match first."""

    def __init__(self, pieces: list[str]) -> None:
        self.pieces = pieces

    def encode(self, text: str) -> list[int]:
        ids = []
        for word in text.split():
            rest = "\u2581" + word
            while rest:
                piece = max((p for p in self.pieces if rest.startswith(p)), key=len)
                ids.append(self.pieces.index(piece))
                rest = rest[len(piece) :]
        return ids

    def decode(self, ids: list[int]) -> str:
        return "".join(self.pieces[i] for i in ids).replace("\u2581", " ").lstrip(" ")

    def id_to_piece(self, id: int) -> str:
        return self.pieces[id]

    def get_piece_size(self) -> int:
        return len(self.pieces)


PIECES = ["<unk>", "</s>", "▁a", "▁red", "▁sh", "irt", "▁hat", "▁on", "▁x"]
EOS = 1
FAKE = FakeProcessor(PIECES)


class Bigram(GPTDecoder):
    """A GPTDecoder whose logits are `table[last token]`: known answers, a real KV cache."""

    def __init__(self, table: Tensor, n_positions: int = 64) -> None:
        super().__init__(TINY, table.shape[1], n_positions=n_positions, dropout=0.0)
        self.table = table

    def forward(self, tokens: Tensor, past: KVCache | None = None) -> tuple[Tensor, KVCache]:
        _, present = super().forward(tokens, past)
        return self.table[tokens], present


def bigram(successors: dict[str, tuple[str, float]]) -> Bigram:
    """Each piece's successor with its logit (the others 0); unlisted pieces go to EOS."""
    table = torch.zeros(len(PIECES), len(PIECES))
    for i, piece in enumerate(PIECES):
        after, logit = successors.get(piece, ("</s>", 5.0))
        table[i, PIECES.index(after)] = logit
    return Bigram(table)


def expected_logp(logit: float) -> float:
    return float(torch.log_softmax(torch.tensor([logit] + [0.0] * (len(PIECES) - 1)), 0)[0])


def test_positions_and_capped_positions() -> None:
    assert positions_of(1) == [] and positions_of(2) == [1]
    assert positions_of(5) == [1, 2, 3, 4]
    assert positions_of(11, 3) == [1, 4, 7]
    assert positions_of(5, 10) == [1, 2, 3, 4]


def test_greedy_continuations_with_known_answers() -> None:
    model = bigram({"▁a": ("▁red", 4.0), "▁red": ("▁sh", 3.0), "▁sh": ("irt", 6.0)})
    records = collect(model, FAKE, EOS, ["a red hat on", "x"], max_tokens=8)
    assert len(records) == 3 and records.sentences == 2 and records.max_tokens == 8
    first, second, third = records.positions
    assert (first.sentence, first.position, first.continuation) == (0, 1, "red hat on")
    assert [PIECES[t] for t in first.tokens] == ["▁red", "▁sh", "irt", "</s>"]
    assert first.logprobs == pytest.approx(
        [expected_logp(4.0), expected_logp(3.0), expected_logp(6.0), expected_logp(5.0)], abs=1e-6
    )
    assert first.p1 == pytest.approx(torch.tensor(expected_logp(4.0)).exp().item())
    assert first.word_start == (True, True, False, False) and first.eos
    assert first.texts == ("red", "red sh", "red shirt")
    assert (second.position, second.continuation) == (2, "hat on")
    assert (third.position, third.continuation) == (3, "on")  # "x" has no position
    assert [PIECES[t] for t in third.tokens] == ["</s>"] and third.eos and third.texts == ()
    assert third.length == 0 and third.word_start == (False,)


def test_max_tokens_truncates_and_the_cache_matches_a_loop() -> None:
    # ▁a -> ▁red -> ▁a -> ... never ends: max_tokens decides the length.
    model = bigram({"▁a": ("▁red", 4.0), "▁red": ("▁a", 4.0)})
    (record,) = collect(model, FAKE, EOS, ["red a"], max_tokens=5).positions
    assert [PIECES[t] for t in record.tokens] == ["▁a", "▁red", "▁a", "▁red", "▁a"]
    assert not record.eos and record.length == 5 and record.texts[-1] == "a red a red a"


def test_model_mode_is_restored_and_bad_settings_name_their_key() -> None:
    model = bigram({})
    model.train()
    collect(model, FAKE, EOS, ["a red"])
    assert model.training
    for key, kwargs in [
        ("max_tokens", {"max_tokens": 0}),
        ("batch", {"batch": 1.5}),
        ("max_positions", {"max_positions": True}),
        ("max_sentences", {"max_sentences": -1}),
    ]:
        with pytest.raises(ConfigError, match=rf"text_prediction\.suggest\.{key}"):
            collect(model, FAKE, EOS, ["a red"], **kwargs)
    with pytest.raises(DataError, match="no positions"):
        collect(model, FAKE, EOS, ["a", ""])
    with pytest.raises(ConfigError, match="max_tokens"):
        collect(Bigram(model.table, n_positions=4), FAKE, EOS, ["a red"], max_tokens=8)


# ---- a real tokenizer and a real (random) decoder -------------------------------------------
TEXT = "the cat sat on a mat and dog ran to red blue house green shirt hat big small"
WORDS = TEXT.split()


@pytest.fixture(scope="module")
def processor() -> spm.SentencePieceProcessor:
    rng = random.Random(0)
    lines = [" ".join(rng.choices(WORDS, k=rng.randint(3, 9))) for _ in range(300)]
    proto = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(lines),
        model_writer=proto,
        vocab_size=60,
        model_type="bpe",
        hard_vocab_limit=False,
        num_threads=1,
        minloglevel=2,
    )
    return spm.SentencePieceProcessor(model_proto=proto.getvalue())


@pytest.fixture(scope="module")
def sentences() -> list[str]:
    rng = random.Random(1)
    return [" ".join(rng.choices(WORDS, k=rng.randint(1, 8))) for _ in range(12)]


def random_decoder(vocab: int) -> GPTDecoder:
    torch.manual_seed(0)
    model = GPTDecoder(GPTArch.uniform(2, 32, 64, 4), vocab + 4, n_positions=64, dropout=0.0)
    with torch.no_grad():
        model.wte.weight.mul_(40)  # sharp distributions: no near-ties for argmax
    return model


def uncached(model: GPTDecoder, context: list[int], eos: int, max_tokens: int, pieces: int):
    """Greedy decoding that recomputes the whole sequence at every step (no KV cache)."""
    tokens, logps, seq = [], [], list(context)
    with torch.no_grad():
        for _ in range(max_tokens):
            logits, _ = model(torch.tensor([seq]))
            logp = torch.log_softmax(logits[0, -1, :pieces].float(), 0)
            token = int(logp.argmax())
            tokens.append(token)
            logps.append(float(logp[token]))
            seq.append(token)
            if token == eos:
                break
    return tokens, logps


def test_batched_equals_unbatched_and_uncached(processor, sentences) -> None:
    model = random_decoder(processor.get_piece_size())
    eos = processor.eos_id()
    calls: list[tuple[int, int]] = []
    batched = collect(
        model,
        processor,
        eos,
        sentences,
        max_tokens=6,
        batch=64,
        progress=lambda *a: calls.append(a),
    )
    single = collect(model, processor, eos, sentences, max_tokens=6, batch=1)
    assert len(batched) == sum(max(len(s.split()) - 1, 0) for s in sentences) > 20
    assert calls[-1] == (len(batched), len(batched))
    assert any(r.eos for r in batched.positions) or any(r.length == 6 for r in batched.positions)
    for a, b in zip(batched.positions, single.positions, strict=True):
        assert (a.sentence, a.position, a.continuation) == (b.sentence, b.position, b.continuation)
        assert a.tokens == b.tokens and a.word_start == b.word_start and a.texts == b.texts
        assert a.logprobs == pytest.approx(b.logprobs, abs=1e-5)
        words = sentences[a.sentence].split()
        context = [eos, *processor.encode(" ".join(words[: a.position]))]
        tokens, logps = uncached(model, context, eos, 6, processor.get_piece_size())
        assert list(a.tokens) == tokens and list(a.logprobs) == pytest.approx(logps, abs=1e-4)
        assert a.texts == tuple(processor.decode(tokens[:j]) for j in range(1, a.length + 1))
        assert a.word_start == tuple(processor.id_to_piece(t).startswith("▁") for t in tokens)
    again = collect(model, processor, eos, sentences, max_tokens=6, batch=64)
    assert [r.to_dict() for r in again.positions] == [r.to_dict() for r in batched.positions]


def test_capped_positions_and_sentences(processor, sentences) -> None:
    model = random_decoder(processor.get_piece_size())
    eos = processor.eos_id()
    records = collect(model, processor, eos, sentences, max_positions=2, max_sentences=5)
    assert records.sentences == 5 and {r.sentence for r in records.positions} <= set(range(5))
    for index, sentence in enumerate(sentences[:5]):
        got = [r.position for r in records.positions if r.sentence == index]
        assert got == positions_of(len(sentence.split()), 2)


def test_records_file_roundtrip_and_damage(tmp_path: Path) -> None:
    model = bigram({"▁a": ("▁red", 4.0), "▁red": ("▁sh", 3.0), "▁sh": ("irt", 6.0)})
    records = collect(model, FAKE, EOS, ["a red hat on", "x a"], max_tokens=8)
    path = tmp_path / "records.jsonl"
    records.save(path)
    loaded = SuggestionRecords.load(path)
    assert loaded.positions == records.positions and loaded.header() == records.header()
    assert [tmp.name for tmp in tmp_path.iterdir()] == ["records.jsonl"]  # atomic: no leftovers
    lines = path.read_text().splitlines()
    assert json.loads(lines[0])["format"] == "nasflow-suggestions"
    path.write_text("\n".join(lines[:-1]) + "\n")
    with pytest.raises(DataError, match="header says 4"):
        SuggestionRecords.load(path)
    bad = json.loads(lines[1]) | {"texts": []}
    path.write_text("\n".join([lines[0], json.dumps(bad), *lines[2:]]) + "\n")
    with pytest.raises(DataError, match=r"records\.jsonl:2: bad position record"):
        SuggestionRecords.load(path)
    path.write_text('{"a": 1}\n')
    with pytest.raises(DataError, match="not a suggestion-records file"):
        SuggestionRecords.load(path)


def test_record_checks() -> None:
    ok = PositionRecord(0, 1, "b", 0.5, (2, 1), (-0.7, -0.1), (True, False), True, ("a",))
    ok.check()
    with pytest.raises(ValueError, match="texts"):
        PositionRecord(0, 1, "b", 0.5, (2,), (-0.7,), (True,), False, ()).check()
    with pytest.raises(ValueError, match="eos"):
        PositionRecord(0, 1, "b", 0.5, (2,), (-0.7,), (True,), True, ()).check()
