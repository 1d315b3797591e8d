"""``python -m osteo_core.docgen [FOLDER]`` (``make docs``): write the reference pages into FOLDER (``docs``)."""

import sys
from pathlib import Path

from osteo_core.docgen.pages import write_docs

if __name__ == "__main__":
    for path in write_docs(Path(sys.argv[1] if len(sys.argv) > 1 else "docs")):
        print(path)
