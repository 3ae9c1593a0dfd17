"""The openai SDK is imported when an openai-chat step is built, not when the plugin loads:
every runtime loads every installed plugin, and a process without a real model should not pay
for the SDK (~25 MB, about a second of import)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path


def test_loading_the_plugin_does_not_import_the_sdk_building_a_step_does(tmp_path: Path
                                                                          ) -> None:
    script = textwrap.dedent("""
        import sys
        from runstream import Runtime
        from runstream_openai import OpenAIChatTask

        runtime = Runtime()  # loads every installed plugin, this one included
        runtime.plugins.task_types.get_for_config("openai-chat", "test")
        print("after load:", "openai" in sys.modules)
        OpenAIChatTask(name="llm", model="m")
        print("after build:", "openai" in sys.modules)
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=60, check=True, cwd=tmp_path).stdout
    assert out.splitlines() == ["after load: False", "after build: True"]
