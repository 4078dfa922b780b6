import torch

from vqfuse.quantize.search import kmeans, nearest_code


def brute_force(z, codebook):
    return torch.cdist(z.double(), codebook.double()).argmin(dim=1)


def test_nearest_code_matches_brute_force_across_block_shapes():
    g = torch.Generator().manual_seed(0)
    z, codebook = torch.randn(1000, 16, generator=g), torch.randn(300, 16, generator=g)
    expected = brute_force(z, codebook)
    for rows, codes in [(512, 4096), (7, 4096), (128, 64), (1000, 13)]:
        idx, _ = nearest_code(z, codebook, block_rows=rows, block_codes=codes)
        assert torch.equal(idx, expected), (rows, codes)


def test_nearest_code_distance_is_squared_euclidean():
    g = torch.Generator().manual_seed(1)
    z, codebook = torch.randn(50, 8, generator=g), torch.randn(20, 8, generator=g)
    idx, dist = nearest_code(z, codebook, return_distance=True)
    expected = (z - codebook[idx]).pow(2).sum(-1)
    torch.testing.assert_close(dist, expected, atol=1e-4, rtol=1e-4)


def test_kmeans_lowers_quantization_error_below_random_codes():
    g = torch.Generator().manual_seed(2)
    centres = torch.randn(8, 4, generator=g) * 5
    z = centres[torch.randint(0, 8, (2000,), generator=g)] + 0.1 * torch.randn(2000, 4, generator=g)
    seeds, _ = kmeans(z, 8, iters=0, generator=torch.Generator().manual_seed(0))
    cents, counts = kmeans(z, 8, iters=20, generator=torch.Generator().manual_seed(0))
    _, err = nearest_code(z, cents, return_distance=True)
    _, err_seeds = nearest_code(z, seeds, return_distance=True)
    assert err.mean() < 0.8 * err_seeds.mean()
    assert counts.sum() == 2000
