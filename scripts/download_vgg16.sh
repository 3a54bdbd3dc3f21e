#!/usr/bin/env bash
exec python "$(dirname "$0")/download_vgg16.py" "$@"
