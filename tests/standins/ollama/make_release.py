# Copyright (c) homelab.edge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Write a fake Ollama Linux release, with the stand-in as bin/ollama, for tests of the role.

    python3 make_release.py DIR [--arch amd64]

DIR receives ollama-linux-ARCH.tgz, laid out like the official archive (bin/ollama and
lib/ollama/), and sha256sum.txt listing it, which get_url can use as the checksum URL.
"""

import argparse
import hashlib
import io
import os
import tarfile

STANDIN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "ollama_standin.py")


def add_directory(archive, name):
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE
    info.mode = 0o755
    archive.addfile(info)


def make_release(directory, arch="amd64"):
    """Write the archive and its checksum file into ``directory``; return the archive path."""
    os.makedirs(directory, exist_ok=True)
    archive_name = "ollama-linux-%s.tgz" % arch
    archive_path = os.path.join(directory, archive_name)

    with open(STANDIN, "rb") as standin:
        program = standin.read()
    with tarfile.open(archive_path, "w:gz") as archive:
        for name in ("bin", "lib", "lib/ollama"):
            add_directory(archive, name)
        info = tarfile.TarInfo("bin/ollama")
        info.mode = 0o755
        info.size = len(program)
        archive.addfile(info, io.BytesIO(program))

    with open(archive_path, "rb") as archive_file:
        digest = hashlib.sha256(archive_file.read()).hexdigest()
    with open(os.path.join(directory, "sha256sum.txt"), "w", encoding="utf-8") as sums:
        sums.write("%s  %s\n" % (digest, archive_name))
    return archive_path


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("directory", help="directory that receives the archive and sha256sum.txt")
    parser.add_argument("--arch", default="amd64", help="architecture in the archive name (default amd64)")
    args = parser.parse_args()
    print(make_release(args.directory, args.arch))


if __name__ == "__main__":
    main()
