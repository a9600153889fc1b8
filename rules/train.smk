# Training stage: one job per (dataset or simulator, method, seed). A method that raises still
# writes its results JSON, with status "failed", so the tables show the failure; at the end
# the workflow lists it, exits non-zero and sets it aside to be retried (Snakefile). A job
# killed by a time limit or a pre-emption resumes from its last checkpoint when run again
# (--retries reruns it at once, with more memory and time per attempt).


rule train_offline:
    input:
        split="data/processed/{dataset}/split/meta.json",
        user_model=user_model_input,
        code=offline_sources,
    output:
        "results/runs/{dataset}/{method}/seed{seed}.json",
    params:
        job=offline_job,
        entry=run_entry(registry.OFFLINE),
    resources:
        gpu=lambda wc: int(registry.method(wc.method).gpu),
        mem_mb=lambda wc, attempt: per_attempt(config["datasets"][wc.dataset], "mem_mb", attempt),
        runtime=lambda wc, attempt: per_attempt(config["datasets"][wc.dataset], "runtime", attempt),
    log:
        "logs/train/{dataset}/{method}/seed{seed}.log",
    shell:
        "{PYTHON} -m imrl run --dataset {wildcards.dataset} --method {wildcards.method} --seed {wildcards.seed}"
        " --split data/processed/{wildcards.dataset}/split --job {params.job:q} --out {output}"
        " --user-model data/processed/{wildcards.dataset}/user_model"
        " --checkpoints results/checkpoints/{wildcards.dataset}/{wildcards.method}/seed{wildcards.seed}"
        " --checkpoint-every {CHECKPOINT_SECONDS}"
        " > {log} 2>&1"


rule train_online:
    input:
        simulator=simulator_inputs,
        code=online_sources,
    output:
        "results/runs/{simulator}/{method}/seed{seed}.json",
    params:
        job=online_job,
        entry=run_entry(registry.ONLINE),
    resources:
        gpu=lambda wc: int(registry.method(wc.method).gpu),
        mem_mb=lambda wc, attempt: per_attempt(config["simulators"][wc.simulator], "mem_mb", attempt),
        runtime=lambda wc, attempt: per_attempt(config["simulators"][wc.simulator], "runtime", attempt),
    log:
        "logs/train/{simulator}/{method}/seed{seed}.log",
    shell:
        "{PYTHON} -m imrl run-online --simulator {wildcards.simulator} --method {wildcards.method}"
        " --seed {wildcards.seed} --job {params.job:q} --out {output}"
        " --checkpoints results/checkpoints/{wildcards.simulator}/{wildcards.method}/seed{wildcards.seed}"
        " --checkpoint-every {CHECKPOINT_SECONDS}"
        " > {log} 2>&1"
