# Real datasets: download (local rule) -> verify -> extract -> convert; the split is
# data.smk's `split`; then the environment metadata and Table I. Which files a dataset
# needs, and where from, is imrl/data/sources.py; the config's `params` choose the
# variant, switch on optional side information and override URLs, paths or checksums.
# VirtualTB's weights take the same download and verify rules, and the same overrides
# in simulators.virtualtb.params.files.
#   snakemake data/processed/ml-20m/split/env.json --configfile config/paper.yaml
from imrl.data import sources as raw_sources

RAW_DATASETS = [d for d in DATASETS if d in raw_sources.SOURCES]
READABLE = [d for d, target in registry.DATASETS.items() if target and d in raw_sources.SOURCES]
for _dataset in RAW_DATASETS:
    raw_sources.check_params(_dataset, config["datasets"][_dataset].get("params", {}))
if "virtualtb" in config["simulators"]:
    raw_sources.check_params("virtualtb", config["simulators"]["virtualtb"].get("params", {}),
                             where="simulators.virtualtb.params")
RAW_FILE_NAMES = sorted({f.name for s in raw_sources.SOURCES.values() for v in s.variants.values() for f in v.files})


localrules:
    download_raw,


wildcard_constraints:
    raw_file="|".join(map(re.escape, RAW_FILE_NAMES)),
    raw_dataset="|".join(map(re.escape, raw_sources.SOURCES)),


def dataset_params(dataset):
    return config["datasets"].get(dataset, {}).get("params", {})


def raw_source_params(raw_dataset):
    """The params that may override a raw source's files: a dataset's, or for VirtualTB's
    weights the simulator's."""
    if raw_dataset == "virtualtb":
        return config["simulators"].get("virtualtb", {}).get("params", {})
    return dataset_params(raw_dataset)


def raw_file_params(wildcards):
    """Only what concerns this file, so that editing another key reruns nothing here."""
    params = raw_source_params(wildcards.raw_dataset)
    chosen = {"files": {wildcards.raw_file: params.get("files", {}).get(wildcards.raw_file, {})}}
    for key in ("max_extract_bytes", "max_extract_ratio"):
        if key in params:
            chosen[key] = params[key]
    return json.dumps(chosen, sort_keys=True)


def raw_inputs(wildcards):
    """Verification records (and extracted folders) of the files the dataset's reader reads."""
    folder = f"data/raw/{wildcards.raw_dataset}"
    needed = raw_sources.files_needed(wildcards.raw_dataset, dataset_params(wildcards.raw_dataset))
    return [f"{folder}/{f.name}.verified.json" for f in needed] + [f"{folder}/{f.name}.extracted"
                                                                   for f in needed if f.archive]


def reader_sources(wildcards):
    """The reader's code: a change to it reconverts the dataset."""
    reader = registry.DATASETS[wildcards.raw_dataset].split(":")[0]
    files = set(registry.source_files(reader)) | set(registry.source_files("imrl.data.convert"))
    return sorted(str(registry.PROJECT_ROOT / path) for path in files)


def table1_outputs():
    return expand("reports/table1.{ext}", ext=["md", "csv"]) if RAW_DATASETS else []


def environment_outputs():
    return expand("data/processed/{dataset}/split/env.json", dataset=DATASETS)


rule download_raw:
    output:
        "data/raw/{raw_dataset}/{raw_file}",
    params:
        source=raw_file_params,
    log:
        "logs/data/{raw_dataset}/{raw_file}.download.log",
    shell:
        "{PYTHON} -m imrl fetch --dataset {wildcards.raw_dataset} --file {wildcards.raw_file}"
        " --raw data/raw/{wildcards.raw_dataset} --params {params.source:q} > {log} 2>&1"


rule verify_raw:
    input:
        "data/raw/{raw_dataset}/{raw_file}",
    output:
        "data/raw/{raw_dataset}/{raw_file}.verified.json",
    params:
        source=raw_file_params,
    log:
        "logs/data/{raw_dataset}/{raw_file}.verify.log",
    shell:
        "{PYTHON} -m imrl verify --dataset {wildcards.raw_dataset} --file {wildcards.raw_file}"
        " --raw data/raw/{wildcards.raw_dataset} --params {params.source:q} > {log} 2>&1"


rule extract_raw:
    input:
        "data/raw/{raw_dataset}/{raw_file}.verified.json",
    output:
        directory("data/raw/{raw_dataset}/{raw_file}.extracted"),
    params:
        source=raw_file_params,
    log:
        "logs/data/{raw_dataset}/{raw_file}.extract.log",
    shell:
        "{PYTHON} -m imrl extract --dataset {wildcards.raw_dataset} --file {wildcards.raw_file}"
        " --raw data/raw/{wildcards.raw_dataset} --params {params.source:q} > {log} 2>&1"


rule convert_raw:
    wildcard_constraints:
        raw_dataset="|".join(map(re.escape, READABLE)),
    input:
        raw=raw_inputs,
        code=reader_sources,
    output:
        data="data/processed/{raw_dataset}/interactions.parquet",
        stats="data/processed/{raw_dataset}/reader.json",
        meta="data/processed/{raw_dataset}/meta.json",
    params:
        options=lambda wc: json.dumps(dataset_params(wc.raw_dataset), sort_keys=True),
    resources:
        mem_mb=lambda wc, attempt: config["resources"]["mem_mb"] * attempt,
    log:
        "logs/data/{raw_dataset}.convert.log",
    shell:
        "{PYTHON} -m imrl convert --dataset {wildcards.raw_dataset} --raw data/raw/{wildcards.raw_dataset}"
        " --params {params.options:q} --out data/processed/{wildcards.raw_dataset} > {log} 2>&1"


rule environment_info:
    input:
        split="data/processed/{dataset}/split/meta.json",
        user_model=lambda wc: [f"data/processed/{wc.dataset}/user_model/meta.json"]
        if config["datasets"][wc.dataset]["environment"]["kind"] == "user_model" else [],
    output:
        "data/processed/{dataset}/split/env.json",
    params:
        environment=lambda wc: json.dumps(config["datasets"][wc.dataset]["environment"]),
        user_model=lambda wc, input: f"--user-model {Path(input.user_model[0]).parent}" if input.user_model else "",
    log:
        "logs/data/{dataset}.env.log",
    shell:
        "{PYTHON} -m imrl env-info --split data/processed/{wildcards.dataset}/split"
        " --environment {params.environment:q} {params.user_model} --out {output} > {log} 2>&1"


if RAW_DATASETS:

    rule table1:
        input:
            processed=expand("data/processed/{dataset}/{file}", dataset=RAW_DATASETS,
                             file=["meta.json", "reader.json", "split/meta.json"]),
            # The project's copy: a run in another --directory has no results/reported of its own.
            reported=str(registry.PROJECT_ROOT / "results/reported/imrl-paper-table1.csv"),
            code=[str(registry.PROJECT_ROOT / path) for path in registry.source_files("imrl.report.table1")],
        output:
            report("reports/table1.md", caption="report/table1.rst", category="Tables", labels={"table": "Table I"}),
            report("reports/table1.csv", caption="report/table1.rst", category="Tables",
                   labels={"table": "Table I (CSV)"}),
        log:
            "logs/report.table1.log",
        shell:
            "{PYTHON} -m imrl table1 --datasets {RAW_DATASETS} --processed data/processed"
            " --reported {input.reported:q} --out reports > {log} 2>&1"
