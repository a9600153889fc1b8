# imrl-bench: raw data -> splits -> runs -> metrics JSON -> tables.
# Default: the embedded synthetic dataset (config/config.yaml); the paper's grid:
#   snakemake --cores all --resources gpu=4 --configfile config/paper.yaml
from snakemake.utils import min_version

min_version("9.0")


configfile: "config/config.yaml"


include: "rules/common.smk"
include: "rules/data.smk"
include: "rules/train.smk"
include: "rules/report.smk"


localrules:
    all,
    report,


rule all:
    input:
        report_outputs(),
