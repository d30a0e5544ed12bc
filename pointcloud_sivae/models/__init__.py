"""Networks only (no losses, no config, no distributed code): the PointNet and DGCNN encoders, the fully
connected decoder, the VAE module (``vae``) and latent paths (``latent``)."""
