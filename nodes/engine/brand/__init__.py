"""The brand workspace: brand kits (one JSON file a brand) and their documents (BrandKnowledge).

Plain Python, nothing of ComfyUI: the node layer passes the folders (ComfyUI's ``brands`` folders, its
input folder) in. ``kit`` reads, checks and writes kits; ``knowledge`` splits and indexes a kit's
documents with BM25; ``rules`` checks a script against the kit (banned words, required legal lines) and
makes the template honour it.
"""
