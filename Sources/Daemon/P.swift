public enum _PDaemon {}
