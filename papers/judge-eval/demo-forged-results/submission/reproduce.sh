#!/usr/bin/env bash
set -e
cd "$(dirname "$0")"
cp -rp saved_results results
