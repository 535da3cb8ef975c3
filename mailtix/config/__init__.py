from mailtix.config.load import config_path, data_dir, load
from mailtix.config.model import Account, Config, Server

__all__ = ["Account", "Config", "Server", "config_path", "data_dir", "load"]
