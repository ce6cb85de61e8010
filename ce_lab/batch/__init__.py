"""Config-driven batches: one file expands to many runs, run here or on Ray, then compared.

spec (the batch file, expansion, validation, config hash) -> store (batch folder, batch.json) ->
run (what each entry needs, scheduling, Ctrl-C) over an executor: local (worker processes) or
ray_exec (Ray tasks); worker runs one task wherever it lands.
"""
