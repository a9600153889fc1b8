"""Run one (dataset or simulator, method, seed): seeding, device slot, the method's
fit/evaluate or train/test cycle, and the results JSON (ok or failed)."""
