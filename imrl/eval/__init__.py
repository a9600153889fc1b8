"""Evaluation: the only place where metrics are computed.

``imrl.eval.ranking`` is the one offline evaluator (full ranking over all items,
recall/precision/nDCG@K; definitions in PROTOCOL.md, "Ranking metrics").
"""
