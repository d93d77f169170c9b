"""Neural-network parts shared by the methods: the ST-GCN encoder, its graph, checkpoint loading."""

from occbench.nn.checkpoints import LoadReport, convert_state_dict, load_encoder
from occbench.nn.graph import ntu_adjacency, spatial_adjacency
from occbench.nn.stgcn import STGCN, ReferenceSTGCN, init_weights

__all__ = [
    "STGCN",
    "LoadReport",
    "ReferenceSTGCN",
    "convert_state_dict",
    "init_weights",
    "load_encoder",
    "ntu_adjacency",
    "spatial_adjacency",
]
