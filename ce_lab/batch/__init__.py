"""Config-driven batches: one file expands to many runs, run here or on Ray, then compared.

spec (the batch file, expansion, validation, config hash) -> store (batch folder, batch.json) ->
plan (open or continue the folder, what each entry needs) -> tasks (entries fused into stacks) ->
execute (scheduling, Ctrl-C, the comparison) over an executor: local (worker processes) or
ray_exec (Ray tasks); worker runs one task wherever it lands.
"""
