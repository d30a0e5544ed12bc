"""The field's metrics as functions of sets of clouds: distance matrices (``distances``), MMD, COV,
1-NNA and set diversity (``generation``), JSD (``jsd``), protocols (``protocols``) and the evaluation of a
generated set against a reference set (``evaluator``). Training's validation and ``eval`` both use them."""
