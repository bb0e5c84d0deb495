import pytest
import torch

from synthcore.embedding import angle_matrix
from synthcore.identity.references import sample_random, sample_reject


def test_random_is_keyed_by_seed_and_row(pipe):
    a = sample_random(pipe, 6, seed=1, batch=4, progress=False)
    b = sample_random(pipe, 9, seed=1, batch=2, progress=False)
    assert torch.equal(a.z, b.z[:6])
    torch.testing.assert_close(a.w, b.w[:6])
    torch.testing.assert_close(a.embeddings, b.embeddings[:6], rtol=1e-5, atol=1e-6)
    assert not torch.equal(a.z, sample_random(pipe, 6, seed=2, progress=False).z)
    assert a.candidate.tolist() == list(range(6))


@pytest.mark.parametrize("batch", [1, 5, 32])
def test_reject_keeps_identities_apart_independently_of_batch(pipe, batch):
    ict = 0.12
    res = sample_reject(pipe, 8, ict=ict, seed=0, truncation_psi=1.0, batch=batch, progress=False)
    d = angle_matrix(res.embeddings)
    off = ~torch.eye(8, dtype=torch.bool)
    assert float(d[off].min()) >= ict
    ref = sample_reject(pipe, 8, ict=ict, seed=0, truncation_psi=1.0, batch=7, progress=False)
    assert res.candidate.tolist() == ref.candidate.tolist()
    assert res.candidate.tolist() != list(range(8))  # some candidates were rejected
    assert torch.equal(res.z, ref.z)
    assert [r["candidates"] for r in res.stats] == [float(k + 1) for k in res.candidate.tolist()]


def test_reject_gives_up_with_a_clear_error(pipe):
    with pytest.raises(RuntimeError, match="only .* of 5 identities found in 20 candidates"):
        sample_reject(pipe, 5, ict=3.0, max_candidates=20, progress=False)
    with pytest.raises(ValueError, match="ict"):
        sample_reject(pipe, 5, ict=4.0, progress=False)
