"""Utilities every layer may use: the device, provenance and atomic writes (``runtime``), PLY files
(``ply``) and rendering (``render``). They import nothing else of the package."""
