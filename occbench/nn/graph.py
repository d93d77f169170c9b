"""The ST-GCN skeleton graph: NTU RGB+D layout, spatial-configuration partitioning.

This rebuilds, from the joint facts in :mod:`occbench.data.ntu`, the adjacency that the published
ST-GCN ``Graph(layout='ntu-rgb+d', strategy='spatial')`` (max_hop 1, dilation 1) produces, and that
SkeletonCLR, CrosSCLR, AimCLR, PSTL and OPSTL all use:

* nodes: the 25 NTU joints; edges: the 24 bones of :data:`occbench.data.ntu.EDGES` plus one self-link
  per joint; the centre is joint 20 (1-based 21, spine shoulder);
* hop distances are computed with ``max_hop = 1``: 0 on the diagonal, 1 between neighbours and
  *infinite* otherwise, also when measuring the distance of a joint to the centre. The published code
  compares those distances to split the neighbours, so only joints next to the centre have a finite
  distance to it; every other pair compares ``inf`` with ``inf`` and lands in the "root" group.
  This is kept on purpose: it is the graph the published checkpoints were trained with;
* ``normalize_digraph``: the 0/1 adjacency (hop <= 1) is scaled column by column, ``A @ D^-1`` with
  ``D`` the column sums, so every column of the whole adjacency sums to 1;
* three subsets: ``A[0]`` the self-links, ``A[1]`` the neighbours that are as close to the centre as
  the node or farther from it (root + centripetal in the code's naming, column ``i`` receives from row
  ``j``), ``A[2]`` the neighbours closer to the centre than the node (centrifugal).

``A[k][j, i]`` is the weight with which joint ``j`` contributes to joint ``i``: a graph convolution
computes ``out[..., i] = sum_k sum_j x_k[..., j] * A[k][j, i]``.
"""

from __future__ import annotations

import numpy as np

from occbench.data.ntu import CENTER_JOINT, EDGES, NUM_JOINTS

NUM_SUBSETS = 3


def hop_distance(num_nodes: int, edges, max_hop: int = 1) -> np.ndarray:
    """Graph distance between all node pairs, ``inf`` beyond ``max_hop`` (as ST-GCN computes it)."""
    adjacency = np.eye(num_nodes, dtype=bool)
    for a, b in edges:
        adjacency[a, b] = adjacency[b, a] = True
    distance = np.full((num_nodes, num_nodes), np.inf)
    reach = np.eye(num_nodes, dtype=bool)
    distance[reach] = 0
    for hop in range(1, max_hop + 1):
        reach = (reach.astype(np.int64) @ adjacency.astype(np.int64)) > 0
        distance[reach & np.isinf(distance)] = hop
    return distance


def normalize_digraph(adjacency: np.ndarray) -> np.ndarray:
    """Scale every column by the inverse of its sum (columns summing to 0 stay 0)."""
    column_sum = adjacency.sum(axis=0)
    scale = np.zeros_like(column_sum, dtype=np.float64)
    nonzero = column_sum > 0
    scale[nonzero] = 1.0 / column_sum[nonzero]
    return adjacency * scale[None, :]


def spatial_adjacency(
    num_nodes: int = NUM_JOINTS, edges=EDGES, center: int = CENTER_JOINT, max_hop: int = 1
) -> np.ndarray:
    """The (1 + 2 * max_hop, V, V) spatial-strategy adjacency, float64 (see the module docstring)."""
    distance = hop_distance(num_nodes, edges, max_hop)
    normalized = normalize_digraph((distance <= max_hop).astype(np.float64))
    to_center = distance[:, center]
    subsets = []
    for hop in range(max_hop + 1):
        at_hop = distance == hop  # [j, i]: j is `hop` away from i
        # j (row) compared with i (column): rows index the source joint, columns the target joint
        source, target = to_center[:, None], to_center[None, :]
        root = at_hop & (source == target)
        closer = at_hop & (source > target)  # ST-GCN's "a_close": the source is farther from the centre
        further = at_hop & ~root & ~closer
        if hop == 0:
            subsets.append(np.where(root, normalized, 0.0))
        else:
            subsets.append(np.where(root | closer, normalized, 0.0))
            subsets.append(np.where(further, normalized, 0.0))
    return np.stack(subsets)


def ntu_adjacency():
    """The (3, 25, 25) NTU RGB+D spatial adjacency as a float32 torch tensor."""
    import torch

    return torch.tensor(spatial_adjacency(), dtype=torch.float32)
