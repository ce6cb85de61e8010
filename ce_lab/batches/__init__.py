"""Config-driven batches: one file expands to many runs, run here or on Ray, then compared.

spec (the batch file, expansion, validation, config hash) -> store (batch folder, batch.json) ->
plan (open or continue the folder, what each entry needs) -> tasks (those entries made into
``ce_lab.plan``'s tasks: stacks by the fusion rule, split for idle workers) -> execute (scheduling,
Ctrl-C, the comparison) over an executor: local (worker processes) or ray_exec (Ray tasks), which
both run exactly the plan's tasks; worker runs one task wherever it lands.
"""
