"""Local fake servers for services the tests cannot reach (cloud video providers)."""
