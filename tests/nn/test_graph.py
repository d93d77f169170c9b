import numpy as np
import torch

from occbench.data.ntu import CENTER_JOINT, EDGES, NUM_JOINTS
from occbench.nn.graph import hop_distance, normalize_digraph, ntu_adjacency, spatial_adjacency


def published_spatial_graph() -> np.ndarray:
    """ST-GCN's Graph(layout='ntu-rgb+d', strategy='spatial', max_hop=1), transcribed loop by loop."""
    neighbor_1base = [(1, 2), (2, 21), (3, 21), (4, 3), (5, 21), (6, 5), (7, 6), (8, 7), (9, 21), (10, 9),
                      (11, 10), (12, 11), (13, 1), (14, 13), (15, 14), (16, 15), (17, 1), (18, 17), (19, 18),
                      (20, 19), (22, 23), (23, 8), (24, 25), (25, 12)]
    v, center = 25, 21 - 1
    edges = [(i, i) for i in range(v)] + [(i - 1, j - 1) for i, j in neighbor_1base]
    a = np.zeros((v, v))
    for i, j in edges:
        a[j, i] = a[i, j] = 1
    hop = np.full((v, v), np.inf)
    reach = [np.linalg.matrix_power(a, d) > 0 for d in range(2)]
    for d in (1, 0):
        hop[reach[d]] = d
    adjacency = (hop <= 1).astype(float)
    norm = adjacency / adjacency.sum(0, keepdims=True)
    subsets = []
    for h in (0, 1):
        root, close, further = (np.zeros((v, v)) for _ in range(3))
        for i in range(v):
            for j in range(v):
                if hop[j, i] == h:
                    if hop[j, center] == hop[i, center]:
                        root[j, i] = norm[j, i]
                    elif hop[j, center] > hop[i, center]:
                        close[j, i] = norm[j, i]
                    else:
                        further[j, i] = norm[j, i]
        subsets += [root] if h == 0 else [root + close, further]
    return np.stack(subsets)


def test_shape_dtype_and_published_values():
    a = ntu_adjacency()
    assert isinstance(a, torch.Tensor) and a.shape == (3, 25, 25) and a.dtype == torch.float32
    np.testing.assert_allclose(spatial_adjacency(), published_spatial_graph(), atol=0, rtol=0)


def test_every_column_is_normalised():
    a = spatial_adjacency()
    np.testing.assert_allclose(a.sum(axis=(0, 1)), np.ones(NUM_JOINTS), atol=1e-12)
    # a joint with d neighbours receives 1 / (d + 1) from itself and from each neighbour
    degree = np.zeros(NUM_JOINTS)
    for i, j in EDGES:
        degree[i] += 1
        degree[j] += 1
    np.testing.assert_allclose(np.diagonal(a[0]), 1 / (degree + 1))
    assert a[0][CENTER_JOINT, CENTER_JOINT] == 1 / 5  # spine shoulder: 4 neighbours


def test_subsets_partition_edges_and_self_links():
    a = spatial_adjacency()
    support = a > 0
    assert not (support[0] & support[1]).any() and not (support[0] & support[2]).any()
    assert not (support[1] & support[2]).any()
    expected = np.eye(NUM_JOINTS, dtype=bool)
    for i, j in EDGES:
        expected[i, j] = expected[j, i] = True
    np.testing.assert_array_equal(support.any(axis=0), expected)
    np.testing.assert_array_equal(support[0], np.eye(NUM_JOINTS, dtype=bool))  # root = self-links
    assert [int(s.sum()) for s in support] == [25, 40, 8]


def test_max_hop_one_distances_make_most_neighbours_root():
    # The published graph measures the distance to the centre with max_hop = 1, so it is infinite for
    # every joint not next to the spine shoulder; only 8 (source, target) pairs are "centrifugal".
    far = {tuple(p) for p in np.argwhere(spatial_adjacency()[2] > 0).tolist()}
    assert far == {(1, 0), (2, 3), (4, 5), (8, 9), (20, 1), (20, 2), (20, 4), (20, 8)}


def test_hop_distance_and_normalize_digraph():
    d = hop_distance(4, [(0, 1), (1, 2), (2, 3)], max_hop=2)
    assert d[0, 0] == 0 and d[0, 1] == 1 and d[0, 2] == 2 and np.isinf(d[0, 3])
    m = normalize_digraph(np.array([[1.0, 0.0], [3.0, 0.0]]))
    np.testing.assert_allclose(m, [[0.25, 0.0], [0.75, 0.0]])
