"""Neural-network building blocks: the ST-GCN encoder, its graph and checkpoint loading."""
