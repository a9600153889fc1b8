# Data stage: dataset in the interactions format -> chronological split.


rule synthesize:
    output:
        data="data/processed/synthetic/interactions.parquet",
        meta="data/processed/synthetic/meta.json",
    params:
        generator=lambda wc: json.dumps(config["datasets"]["synthetic"].get("params", {})),
        seed=lambda wc: config["datasets"]["synthetic"].get("seed", 0),
    log:
        "logs/data/synthetic.log",
    shell:
        "{PYTHON} -m imrl synthesize --params {params.generator:q} --seed {params.seed}"
        " --out data/processed/synthetic > {log} 2>&1"


rule split:
    input:
        "data/processed/{dataset}/meta.json",
    output:
        train="data/processed/{dataset}/split/train.parquet",
        valid="data/processed/{dataset}/split/valid.parquet",
        test="data/processed/{dataset}/split/test.parquet",
        meta="data/processed/{dataset}/split/meta.json",
    params:
        preprocess=lambda wc: json.dumps(config["datasets"][wc.dataset]["preprocess"]),
    log:
        "logs/data/{dataset}.split.log",
    shell:
        "{PYTHON} -m imrl split --data data/processed/{wildcards.dataset} --preprocess {params.preprocess:q}"
        " --name {wildcards.dataset} --out data/processed/{wildcards.dataset}/split > {log} 2>&1"


rule user_model:
    input:
        split="data/processed/{dataset}/split/meta.json",
        code=[str(registry.PROJECT_ROOT / path) for path in registry.source_files("imrl.envs.user_model")],
    output:
        model="data/processed/{dataset}/user_model/model.pt",
        meta="data/processed/{dataset}/user_model/meta.json",
    params:
        settings=lambda wc: json.dumps(config["datasets"][wc.dataset]["environment"]["user_model"]),
        seed=lambda wc: config["datasets"][wc.dataset]["environment"]["seed"],
    log:
        "logs/data/{dataset}.user_model.log",
    shell:
        "{PYTHON} -m imrl fit-user-model --split data/processed/{wildcards.dataset}/split"
        " --params {params.settings:q} --seed {params.seed} --out data/processed/{wildcards.dataset}/user_model"
        " > {log} 2>&1"
