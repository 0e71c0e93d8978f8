# Copyright (c) homelab.edge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Stand-in for the Ollama server; see ollama_standin.py."""

from .ollama_standin import OllamaStandin, normalize_model_name, parse_ollama_host, start

__all__ = ["OllamaStandin", "normalize_model_name", "parse_ollama_host", "start"]
