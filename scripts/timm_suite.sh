#!/usr/bin/env bash
# Run timm's own tests/test_models.py, unchanged, against tglc_zoo's models only (docs/timm_suite.md).
#
#   bash scripts/timm_suite.sh <timm's tests/test_models.py> [small|big|<fnmatch patterns, comma-separated>] [pytest args]
#
# The test file is fetched from timm's repository (never kept in this project); it is copied into a
# scratch directory outside the project beside a conftest.py that imports tglc_zoo before collection and
# wraps timm.list_models / list_pretrained so every model list the test module builds holds only our
# names (its own filters, exclusions, tags and pretrained flags still apply). timm's `module=` filter
# names timm's source files whose models implement forward_intermediates; every tglc_zoo model does,
# so a module filter selects all of ours. Scopes: small = wrn16_2*, wrn16_4*, mobilenetv2* (47 models);
# big = the untagged default configs of wrn28_10, wrn28_40, wrn28_60, wrn28_80, wrn34_2.
# Two tests are not about our models and are deselected: test_model_inference (timm's test_* models,
# downloads) and test_model_forward_torchscript_with_features_fx (hard-codes regnetx_002).
set -euo pipefail
TESTS=${1:?usage: bash scripts/timm_suite.sh <path to timm tests/test_models.py> [scope] [pytest args]}
SCOPE=${2:-small}
shift $(( $# >= 2 ? 2 : 1 ))
SCRATCH=$(mktemp -d "${TMPDIR:-/tmp}/timm_suite.XXXXXX")
cp "$TESTS" "$SCRATCH/test_models.py"
cat > "$SCRATCH/conftest.py" <<'EOF'
import fnmatch
import os

import timm
from timm.models import split_model_name_tag

import tglc_zoo

SMALL = ["wrn16_2*", "wrn16_4*", "mobilenetv2*"]
BIG = ["wrn28_10", "wrn28_40", "wrn28_60", "wrn28_80", "wrn34_2"]
_scope = os.environ.get("TGLC_SCOPE", "small")
PATTERNS = SMALL if _scope == "small" else BIG if _scope == "big" else _scope.split(",")

_list_models, _list_pretrained = timm.list_models, timm.list_pretrained


def _ours(name):
    base = split_model_name_tag(name)[0]
    return tglc_zoo.is_model(base) and any(fnmatch.fnmatch(base, p) for p in PATTERNS)


def list_models(filter="", module="", pretrained=False, exclude_filters="", name_matches_cfg=False,
                include_tags=None):
    names = _list_models(filter=filter, pretrained=pretrained, exclude_filters=exclude_filters,
                         name_matches_cfg=name_matches_cfg, include_tags=include_tags)
    return [n for n in names if _ours(n)]


def list_pretrained(filter="", exclude_filters=""):
    return [n for n in _list_pretrained(filter=filter, exclude_filters=exclude_filters) if _ours(n)]


timm.list_models, timm.list_pretrained = list_models, list_pretrained
timm.models.list_models, timm.models.list_pretrained = list_models, list_pretrained
EOF
echo "[timm suite] $(python3 -c 'import timm; print("timm", timm.__version__)'), scope $SCOPE, in $SCRATCH"
cd "$SCRATCH"
TGLC_SCOPE=$SCOPE exec python3 -m pytest test_models.py -p no:cacheprovider -p no:warnings -rfEs \
    -k "test_model_ and not test_model_inference and not torchscript_with_features_fx" "$@"
