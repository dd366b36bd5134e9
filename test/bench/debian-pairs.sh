#!/usr/bin/env bash
# Real release pairs for `npm run bench:delta`: versioned bioinformatics data packages as Debian ships them
# in bookworm (old) and trixie (new). Downloads the .deb files from deb.debian.org, extracts the data file
# of each into DIR/<pair>/{old,new}/ and prints the bench commands.
#   bash test/bench/debian-pairs.sh [DIR]      (default /tmp/herald-pairs; ~125 MB of downloads)
set -euo pipefail
dir=${1:-/tmp/herald-pairs}
mirror=http://deb.debian.org/debian/pool/main/r
for cmd in curl dpkg-deb xz; do command -v "$cmd" >/dev/null || { echo "needs $cmd" >&2; exit 2; }; done

# pair | package | old version (bookworm) | new version (trixie) | file inside the package | decompress
pairs=(
  "go.db|r-bioc-go.db|3.16.0-1|3.20.0-2|usr/lib/R/site-library/GO.db/extdata/GO.sqlite|"
  "org.hs.eg.db|r-bioc-org.hs.eg.db|3.16.0-1|3.20.0-3|usr/lib/R/site-library/org.Hs.eg.db/extdata/org.Hs.eg.sqlite|"
  "genomeinfodbdata|r-bioc-genomeinfodbdata|1.2.9-1|1.2.13-2|usr/lib/R/site-library/GenomeInfoDbData/data/specData.rda|xz"
)

mkdir -p "$dir/debs"
for p in "${pairs[@]}"; do
  IFS='|' read -r name pkg old new path unpack <<< "$p"
  for side in old new; do
    version=$([ "$side" = old ] && echo "$old" || echo "$new")
    deb="$dir/debs/${pkg}_${version}_all.deb"
    [ -s "$deb" ] || curl -fsS -o "$deb" "$mirror/$pkg/${pkg}_${version}_all.deb"
    x=$(mktemp -d)
    dpkg-deb -x "$deb" "$x"
    mkdir -p "$dir/$name/$side"
    base=$(basename "$path")
    if [ "$unpack" = xz ]; then
      # R's .rda is xz-compressed serialization: compare the serialized bytes, as a publisher would ship them
      xz -dc "$x/$path" > "$dir/$name/$side/${base%.rda}.rdx"
    else
      cp "$x/$path" "$dir/$name/$side/$base"
    fi
    rm -rf "$x"
  done
  echo "npm run bench:delta -- $dir/$name/old $dir/$name/new --baselines"
done
