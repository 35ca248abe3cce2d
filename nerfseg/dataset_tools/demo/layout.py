"""Room layout of the demo (room-local z-up frame: floor [0, Lx] x [0, Ly] at z = 0): which furniture goes where."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.ndimage import distance_transform_edt

from nerfseg.dataset_tools.boxes import rot_z, yup_to_zup
from nerfseg.dataset_tools.demo.furniture import (
    DemoModel,
    make_bed,
    make_bookshelf,
    make_ceiling_lamp,
    make_chair,
    make_coffee_table,
    make_desk,
    make_dining_table,
    make_drawer_chest,
    make_dressing_table,
    make_floor_lamp,
    make_nightstand,
    make_office_chair,
    make_pendant_lamp,
    make_piano,
    make_plant,
    make_round_end_table,
    make_sideboard,
    make_sofa,
    make_stool,
    make_tv_stand,
    make_wardrobe,
    make_wine_cabinet,
)
from nerfseg.dataset_tools.demo.textures import draw_uniform

ROOM_TYPES = ("Bedroom", "LivingRoom", "DiningRoom", "Library", "MasterBedroom")
WALL_GAP = 0.03  # furniture backs stand this far from the wall (the baseboard is 1.5 cm thick)
MARGIN = 0.05  # minimum gap between the footprints of two floor objects
MIN_FREE_RADIUS = 0.45  # a disc of this radius must stay free of floor objects (camera room)
MAX_COVER = 0.5  # floor objects may cover at most this fraction of the floor

WALL_YAW = {"N": 0.0, "S": math.pi, "E": -math.pi / 2, "W": math.pi / 2}  # the model's front faces the room


@dataclass
class PlacedItem:
    model: DemoModel
    x: float
    y: float
    z: float
    yaw: float
    scale: float
    fp: np.ndarray  # (4,) world footprint [xmin, ymin, xmax, ymax]
    zr: tuple[float, float]
    optional: bool = False

    def world_vertices(self) -> np.ndarray:
        v = yup_to_zup(self.model.vertices * self.scale)
        return v @ rot_z(self.yaw).T + np.array([self.x, self.y, self.z])


def _fp_rel(model: DemoModel, yaw: float, scale: float) -> np.ndarray:
    """Footprint of a model relative to its placement point, for a yaw about z-up."""
    lo, hi = model.lo * scale, model.hi * scale
    # model (x, z_yup) -> z-up local (x, -z): the rectangle [lo.x, hi.x] x [-hi.z, -lo.z]
    corners = np.array([[lo[0], -hi[2]], [hi[0], -hi[2]], [hi[0], -lo[2]], [lo[0], -lo[2]]])
    c, s = math.cos(yaw), math.sin(yaw)
    xy = corners @ np.array([[c, s], [-s, c]])
    return np.concatenate([xy.min(axis=0), xy.max(axis=0)])


class RoomLayout:
    def __init__(self, rng: np.random.Generator, lx: float, ly: float, h: float):
        self.rng, self.lx, self.ly, self.h = rng, lx, ly, h
        self.items: list[PlacedItem] = []
        self.zones: list[tuple[np.ndarray, int]] = []  # clearance rectangles in front of furniture (owner item)
        self.panels: list[np.ndarray] = []  # ceiling light panels (xy rects)

    # -- tests
    def _inside(self, fp: np.ndarray) -> bool:
        g = WALL_GAP - 1e-9
        return bool(fp[0] >= g and fp[1] >= g and fp[2] <= self.lx - g and fp[3] <= self.ly - g)

    @staticmethod
    def _hit(a: np.ndarray, b: np.ndarray, margin: float) -> bool:
        return bool(a[0] < b[2] + margin and b[0] < a[2] + margin and a[1] < b[3] + margin and b[1] < a[3] + margin)

    def fits(self, fp: np.ndarray) -> bool:
        """Inside the room (WALL_GAP from the walls), MARGIN away from every floor item, outside the
        clearance zones kept free in front of wardrobes, shelves, beds and behind seats."""
        if not self._inside(fp):
            return False
        if any(it.model.mount == "floor" and self._hit(fp, it.fp, MARGIN) for it in self.items):
            return False
        return not any(self._hit(fp, z, 0.0) for z, _ in self.zones)

    # -- placing
    def make(self, model: DemoModel, x: float, y: float, yaw: float, scale: float, optional: bool, z: float = 0.0) -> PlacedItem:
        fp = _fp_rel(model, yaw, scale) + np.array([x, y, x, y])
        lo_z, hi_z = model.lo[1] * scale + z, model.hi[1] * scale + z
        return PlacedItem(model, x, y, z, yaw, scale, fp, (lo_z, hi_z), optional)

    def add(self, item: PlacedItem, clearance: float = 0.0) -> int:
        self.items.append(item)
        idx = len(self.items) - 1
        if clearance > 0:
            f = item.fp
            dx, dy = round(math.sin(item.yaw)), round(-math.cos(item.yaw))  # front direction
            if dy < 0:
                zone = np.array([f[0], f[1] - clearance, f[2], f[1]])
            elif dy > 0:
                zone = np.array([f[0], f[3], f[2], f[3] + clearance])
            elif dx < 0:
                zone = np.array([f[0] - clearance, f[1], f[0], f[3]])
            else:
                zone = np.array([f[2], f[1], f[2] + clearance, f[3]])
            self.zones.append((zone, idx))
        return idx

    def at_wall(self, model: DemoModel, wall: str, t: float, scale: float, optional: bool) -> PlacedItem:
        """Item with its back against ``wall`` and its centre at ``t`` along the wall."""
        yaw = WALL_YAW[wall]
        r = _fp_rel(model, yaw, scale)
        if wall == "N":
            return self.make(model, t - (r[0] + r[2]) / 2, self.ly - WALL_GAP - r[3], yaw, scale, optional)
        if wall == "S":
            return self.make(model, t - (r[0] + r[2]) / 2, WALL_GAP - r[1], yaw, scale, optional)
        if wall == "E":
            return self.make(model, self.lx - WALL_GAP - r[2], t - (r[1] + r[3]) / 2, yaw, scale, optional)
        return self.make(model, WALL_GAP - r[0], t - (r[1] + r[3]) / 2, yaw, scale, optional)

    def wall_len(self, wall: str) -> float:
        return self.lx if wall in ("N", "S") else self.ly

    def beside(self, anchor: PlacedItem, model: DemoModel, side: int, gap: float, scale: float, optional: bool) -> PlacedItem:
        """Item on the left (-1) / right (+1) of ``anchor`` along the same wall, backs aligned."""
        yaw = anchor.yaw
        r = _fp_rel(model, yaw, scale)
        ax, ay = round(math.cos(yaw)), round(math.sin(yaw))  # anchor's local +x in the world
        f = anchor.fp
        if ax != 0:  # along x
            s = side * ax
            x = (f[2] + gap - r[0]) if s > 0 else (f[0] - gap - r[2])
            back_y = f[3] if round(-math.cos(yaw)) < 0 else f[1]
            y = back_y - r[3] if round(-math.cos(yaw)) < 0 else back_y - r[1]
        else:
            s = side * ay
            y = (f[3] + gap - r[1]) if s > 0 else (f[1] - gap - r[3])
            back_x = f[2] if round(math.sin(yaw)) < 0 else f[0]
            x = back_x - r[2] if round(math.sin(yaw)) < 0 else back_x - r[0]
        return self.make(model, x, y, yaw, scale, optional)

    def facing(self, anchor: PlacedItem, model: DemoModel, gap: float, scale: float, optional: bool, turn: float = math.pi) -> PlacedItem:
        """Item in front of ``anchor`` (its front side), turned by ``turn`` relative to the anchor."""
        yaw = anchor.yaw + turn
        r = _fp_rel(model, yaw, scale)
        f = anchor.fp
        dx, dy = round(math.sin(anchor.yaw)), round(-math.cos(anchor.yaw))
        cx, cy = (f[0] + f[2]) / 2, (f[1] + f[3]) / 2
        if dy < 0:
            return self.make(model, cx - (r[0] + r[2]) / 2, f[1] - gap - r[3], yaw, scale, optional)
        if dy > 0:
            return self.make(model, cx - (r[0] + r[2]) / 2, f[3] + gap - r[1], yaw, scale, optional)
        if dx < 0:
            return self.make(model, f[0] - gap - r[2], cy - (r[1] + r[3]) / 2, yaw, scale, optional)
        return self.make(model, f[2] + gap - r[0], cy - (r[1] + r[3]) / 2, yaw, scale, optional)

    # -- strategies (each tries a few random positions; returns False when nothing fits)
    def _walls(self, prefer_long: bool = False) -> list[str]:
        walls = ["N", "S", "E", "W"]
        self.rng.shuffle(walls)
        if prefer_long:
            walls.sort(key=lambda w: -self.wall_len(w))
        return walls

    def place_wall(self, model: DemoModel, optional: bool, clearance: float = 0.5, tries: int = 24, walls: list[str] | None = None) -> PlacedItem | None:
        scale = draw_uniform(self.rng, 0.96, 1.04)
        for k in range(tries):
            wall = (walls or self._walls())[k % len(walls or "NSEW")]
            length = self.wall_len(wall)
            t = draw_uniform(self.rng, 0.3, length - 0.3)
            it = self.at_wall(model, wall, t, scale, optional)
            if self.fits(it.fp):
                self.add(it, clearance)
                return it
        return None

    def place_corner(self, model: DemoModel, optional: bool, tries: int = 12) -> PlacedItem | None:
        scale = draw_uniform(self.rng, 0.95, 1.05)
        for _ in range(tries):
            cx, cy = int(self.rng.integers(2)), int(self.rng.integers(2))
            g = WALL_GAP + draw_uniform(self.rng, 0.02, 0.15)
            # face the room centre (front = (sin yaw, -cos yaw)), i.e. sit diagonally in the corner
            ang = math.atan2(self.ly / 2 - (0.0 if cy == 0 else self.ly), self.lx / 2 - (0.0 if cx == 0 else self.lx))
            yaw = ang + math.pi / 2
            r = _fp_rel(model, yaw, scale)
            x = (g - r[0]) if cx == 0 else (self.lx - g - r[2])
            y = (g - r[1]) if cy == 0 else (self.ly - g - r[3])
            it = self.make(model, x, y, yaw, scale, optional)
            if self.fits(it.fp):
                self.add(it)
                return it
        return None

    def place_ceiling(self, model: DemoModel, x: float, y: float, optional: bool) -> PlacedItem | None:
        scale = 1.0
        top = model.hi[1]
        z = self.h - 0.005 - top * scale
        for k in range(40):
            jx, jy = (0.0, 0.0) if k == 0 else (draw_uniform(self.rng, -1, 1) * 0.15 * k ** 0.5, draw_uniform(self.rng, -1, 1) * 0.15 * k ** 0.5)
            it = self.make(model, x + jx, y + jy, 0.0, scale, optional, z=z)
            if not self._inside(it.fp) or any(self._hit(it.fp, p, 0.1) for p in self.panels):
                continue
            clash = False
            for o in self.items:
                if self._hit(it.fp, o.fp, 0.05) and not (o.zr[1] + 0.3 <= it.zr[0] or it.zr[1] <= o.zr[0]):
                    clash = True
                    break
            if not clash:
                self.add(it)
                return it
        return None

    # -- free floor for cameras
    def free_ok(self) -> bool:
        res = 0.05
        nx, ny = max(1, int(self.lx / res)), max(1, int(self.ly / res))
        xs, ys = (np.arange(nx) + 0.5) * res, (np.arange(ny) + 0.5) * res
        occ = np.zeros((nx, ny), dtype=bool)
        for it in self.items:
            if it.model.mount != "floor":
                continue
            f = it.fp
            occ |= ((xs[:, None] >= f[0]) & (xs[:, None] <= f[2])) & ((ys[None, :] >= f[1]) & (ys[None, :] <= f[3]))
        if occ.mean() > MAX_COVER:
            return False
        free = np.pad(~occ, 1, constant_values=False)
        return bool(distance_transform_edt(free).max() * res >= MIN_FREE_RADIUS)


def _pendant_drop(h: float, rng: np.random.Generator) -> float:
    return h - draw_uniform(rng, 1.75, 1.95)


def _need(x: object) -> bool:
    """A required placement succeeded (strategies return None or False when nothing fits)."""
    return x is not None and x is not False


def _plan_bedroom(L: RoomLayout, room_type: str, rng: np.random.Generator) -> bool:
    """Bedroom / MasterBedroom: bed group, wardrobe, then a desk (Bedroom) or dressing table (MasterBedroom), a lamp."""
    bed_cat = "King-size Bed" if room_type == "MasterBedroom" else ("Double Bed" if rng.random() < 0.7 else "Single bed")
    if not _need(_bed_group(L, make_bed(rng, bed_cat), make_nightstand(rng), 2 if room_type == "MasterBedroom" or rng.random() < 0.7 else 1)):
        return False
    if not _need(L.place_wall(make_wardrobe(rng), False, clearance=0.6)):
        return False
    if room_type == "Bedroom":
        if not _need(_front_group(L, make_desk(rng), make_office_chair(rng) if rng.random() < 0.5 else make_chair(rng))):
            return False
        if not _need(L.place_corner(make_plant(rng), False)):
            return False
        if rng.random() < 0.4:
            L.place_wall(make_bookshelf(rng), True)
        if rng.random() < 0.4:
            L.place_corner(make_floor_lamp(rng), True)
    else:
        if not _need(_front_group(L, make_dressing_table(rng), make_stool(rng) if rng.random() < 0.5 else make_chair(rng, "Dressing Chair"))):
            return False
        if rng.random() < 0.7:
            L.place_wall(make_tv_stand(rng), True)
        L.place_corner(make_plant(rng), True)
        L.place_corner(make_floor_lamp(rng), True)
        if rng.random() < 0.5:
            L.place_wall(make_drawer_chest(rng), True)
    lamp = make_ceiling_lamp(rng) if rng.random() < 0.6 else make_pendant_lamp(rng, min(0.7, _pendant_drop(L.h, rng)))
    return _need(L.place_ceiling(lamp, L.lx / 2, L.ly / 2, False))


def _plan_living_room(L: RoomLayout, room_type: str, rng: np.random.Generator) -> bool:
    """LivingRoom: sofa group, a TV stand on the wall the sofa faces, bookshelf, plant, lamps, maybe a piano."""
    sofa = _sofa_group(L, rng)
    if sofa is None:
        return False
    tv = L.place_wall(make_tv_stand(rng), False, clearance=0.4, walls=[{"N": "S", "S": "N", "E": "W", "W": "E"}[_wall_of(sofa)]] + L._walls())
    if tv is None:
        return False
    if not _need(L.place_wall(make_bookshelf(rng), False)):
        return False
    if not _need(L.place_corner(make_plant(rng), False)):
        return False
    L.place_corner(make_floor_lamp(rng), True)
    if rng.random() < 0.35:
        L.place_wall(make_piano(rng), True, clearance=0.6)
    return _need(L.place_ceiling(make_ceiling_lamp(rng), L.lx / 2, L.ly / 2, False))


def _plan_dining_room(L: RoomLayout, room_type: str, rng: np.random.Generator) -> bool:
    """DiningRoom: table with chairs in the middle, sideboard, cabinets, a pendant lamp over the table."""
    table = _dining_group(L, rng)
    if table is None:
        return False
    if not _need(L.place_wall(make_sideboard(rng), False)):
        return False
    if rng.random() < 0.6:
        L.place_wall(make_wine_cabinet(rng), True)
    if not _need(L.place_corner(make_plant(rng), False)):
        return False
    if rng.random() < 0.3:
        L.place_wall(make_drawer_chest(rng), True)
    tx, ty = (table.fp[0] + table.fp[2]) / 2, (table.fp[1] + table.fp[3]) / 2
    return _need(L.place_ceiling(make_pendant_lamp(rng, _pendant_drop(L.h, rng)), tx, ty, False))


def _shelf_row(L: RoomLayout, shelf: DemoModel, first: PlacedItem, n_shelves: int, rng: np.random.Generator) -> None:
    """A row of identical shelves beside ``first``: several instances of one model."""
    for _ in range(n_shelves - 1):
        side = int(rng.choice([-1, 1]))
        for s in (side, -side):
            it = L.beside(L.items[-1] if L.items[-1].model is shelf else first, shelf, s, draw_uniform(rng, 0.06, 0.1), first.scale, True)
            if L.fits(it.fp):
                L.add(it, 0.5)
                break


def _plan_library(L: RoomLayout, room_type: str, rng: np.random.Generator) -> bool:
    """Library: desk and chair, a row of shelves, an armchair in a corner, lamps, a piano or a plant."""
    if not _need(_front_group(L, make_desk(rng), make_office_chair(rng))):
        return False
    shelf = make_bookshelf(rng)
    n_shelves = int(rng.integers(2, 4))
    first = L.place_wall(shelf, False)
    if first is None:
        return False
    _shelf_row(L, shelf, first, n_shelves, rng)
    arm = L.place_corner(make_sofa(rng, 1), False)
    if arm is None:
        return False
    if rng.random() < 0.5:
        L.place_corner(make_round_end_table(rng), True)
    L.place_corner(make_floor_lamp(rng), True)
    if rng.random() < 0.4:
        L.place_wall(make_piano(rng), True, clearance=0.6)
    else:
        L.place_corner(make_plant(rng), True)
    return _need(L.place_ceiling(make_ceiling_lamp(rng), L.lx / 2, L.ly / 2, False))


_ROOM_PLANS = {
    "Bedroom": _plan_bedroom,
    "MasterBedroom": _plan_bedroom,
    "LivingRoom": _plan_living_room,
    "DiningRoom": _plan_dining_room,
    "Library": _plan_library,
}


def _room_plan(layout: RoomLayout, room_type: str, rng: np.random.Generator) -> bool:
    """Fill ``layout``; False when a required item did not fit (the caller draws a new room)."""
    plan = _ROOM_PLANS.get(room_type)
    if plan is None:
        raise ValueError(f"unknown demo room type {room_type!r}")
    return plan(layout, room_type, rng)


def _wall_of(item: PlacedItem) -> str:
    best = min(WALL_YAW, key=lambda w: abs(math.remainder(item.yaw - WALL_YAW[w], 2 * math.pi)))
    return best


def _bed_group(L: RoomLayout, bed: DemoModel, ns: DemoModel, n_ns: int) -> bool:
    for _ in range(30):
        wall = L._walls(prefer_long=L.rng.random() < 0.5)[0]
        scale = draw_uniform(L.rng, 0.97, 1.03)
        t = draw_uniform(L.rng, 1.0, L.wall_len(wall) - 1.0)
        b = L.at_wall(bed, wall, t, scale, False)
        if not L.fits(b.fp):
            continue
        sides = [-1, 1] if n_ns == 2 else [int(L.rng.choice([-1, 1]))]
        stands = [L.beside(b, ns, s, draw_uniform(L.rng, 0.06, 0.12), 1.0, False) for s in sides]
        if all(L.fits(s.fp) for s in stands) and not (len(stands) == 2 and L._hit(stands[0].fp, stands[1].fp, MARGIN)):
            L.add(b, clearance=0.6)
            for s in stands:
                L.add(s)
            return True
    return False


def _front_group(L: RoomLayout, main: DemoModel, seat: DemoModel) -> bool:
    """A wall piece with a seat in front of it facing it (desk + chair, dressing table + stool)."""
    for _ in range(30):
        it = L.place_wall(main, False, clearance=0.0, tries=1)
        if it is None:
            continue
        idx = len(L.items) - 1
        chair = L.facing(it, seat, draw_uniform(L.rng, 0.08, 0.15), 1.0, False)
        if L.fits(chair.fp):
            L.add(chair, 0.0)
            L.zones.append((_zone_behind(chair, 0.4), len(L.items) - 1))
            return True
        L.items.pop(idx)
    return False


def _zone_behind(item: PlacedItem, depth: float) -> np.ndarray:
    f = item.fp
    dx, dy = round(math.sin(item.yaw)), round(-math.cos(item.yaw))
    # the seat faces the desk, so its free space is behind it (where the sitter's legs and walkway are)
    dx, dy = -dx, -dy
    if dy < 0:
        return np.array([f[0], f[1] - depth, f[2], f[1]])
    if dy > 0:
        return np.array([f[0], f[3], f[2], f[3] + depth])
    if dx < 0:
        return np.array([f[0] - depth, f[1], f[0], f[3]])
    return np.array([f[2], f[1], f[2] + depth, f[3]])


def _sofa_group(L: RoomLayout, rng: np.random.Generator) -> PlacedItem | None:
    sofa_m = make_sofa(rng, 3 if rng.random() < 0.7 else 2)
    table_m = make_coffee_table(rng)
    arm_m = make_sofa(rng, 1)
    end_m = make_round_end_table(rng) if rng.random() < 0.6 else None
    for _ in range(30):
        wall = L._walls(prefer_long=True)[int(rng.integers(2))]
        t = draw_uniform(rng, 1.3, L.wall_len(wall) - 1.3)
        s = L.at_wall(sofa_m, wall, t, draw_uniform(rng, 0.97, 1.03), False)
        if not L.fits(s.fp):
            continue
        tab = L.facing(s, table_m, draw_uniform(rng, 0.35, 0.45), 1.0, False, turn=0.0)
        if not L.fits(tab.fp):
            continue
        L.add(s)
        L.add(tab)
        n_arm = int(rng.integers(1, 3))
        ax = round(math.cos(tab.yaw)) != 0  # the coffee table's long axis runs along x
        ends = ["+x", "-x"] if ax else ["+y", "-y"]
        if rng.random() < 0.5:
            ends.reverse()
        for direction in ends[:n_arm]:  # armchairs at the ends of the coffee table, facing it
            arm = _next_to(L, tab.fp, arm_m, direction, draw_uniform(rng, 0.25, 0.4), 1.0, True)
            if L.fits(arm.fp):
                L.add(arm)
        if end_m is not None:
            for side in (1, -1):
                e = L.beside(s, end_m, side, draw_uniform(rng, 0.06, 0.12), 1.0, True)
                if L.fits(e.fp):
                    L.add(e)
                    break
        return s
    return None


#: yaw that makes an item placed on that side of an anchor face back toward it (front = (sin, -cos))
FACE_BACK = {"+x": -math.pi / 2, "-x": math.pi / 2, "+y": 0.0, "-y": math.pi}


def _next_to(L: RoomLayout, fp: np.ndarray, model: DemoModel, direction: str, gap: float, scale: float, optional: bool, offset: float = 0.0) -> PlacedItem:
    """Item beyond the ``direction`` edge of footprint ``fp`` (gap metres away), facing it, centred
    on its centre line shifted by ``offset`` (dining chairs, armchairs)."""
    yaw = FACE_BACK[direction]
    r = _fp_rel(model, yaw, scale)
    cx, cy = (fp[0] + fp[2]) / 2 + offset, (fp[1] + fp[3]) / 2 + offset
    if direction == "+x":
        return L.make(model, fp[2] + gap - r[0], cy - (r[1] + r[3]) / 2, yaw, scale, optional)
    if direction == "-x":
        return L.make(model, fp[0] - gap - r[2], cy - (r[1] + r[3]) / 2, yaw, scale, optional)
    if direction == "+y":
        return L.make(model, cx - (r[0] + r[2]) / 2, fp[3] + gap - r[1], yaw, scale, optional)
    return L.make(model, cx - (r[0] + r[2]) / 2, fp[1] - gap - r[3], yaw, scale, optional)


def _dining_group(L: RoomLayout, rng: np.random.Generator) -> PlacedItem | None:
    table_m = make_dining_table(rng)
    chair_m = make_chair(rng)
    for _ in range(20):
        yaw = 0.0 if L.lx >= L.ly else math.pi / 2
        r = _fp_rel(table_m, yaw, 1.0)
        x = L.lx / 2 + draw_uniform(rng, -0.3, 0.3) - (r[0] + r[2]) / 2
        y = L.ly / 2 + draw_uniform(rng, -0.3, 0.3) - (r[1] + r[3]) / 2
        tab = L.make(table_m, x, y, yaw, 1.0, False)
        if not L.fits(tab.fp):
            continue
        f = tab.fp
        long_x = (f[2] - f[0]) >= (f[3] - f[1])
        length = (f[2] - f[0]) if long_x else (f[3] - f[1])
        n_side = 3 if length >= 1.65 else 2
        gap = draw_uniform(rng, 0.08, 0.14)
        sides, end_dirs = (("+y", "-y"), ("+x", "-x")) if long_x else (("+x", "-x"), ("+y", "-y"))
        chairs = [
            _next_to(L, f, chair_m, d, gap, 1.0, False, offset=(k + 0.5) / n_side * length - length / 2) for d in sides for k in range(n_side)
        ]
        ends = [_next_to(L, f, chair_m, d, gap, 1.0, True) for d in end_dirs]
        if not all(L.fits(c.fp) for c in chairs):
            continue
        L.add(tab)
        for c in chairs:
            L.add(c)
        if rng.random() < 0.6:
            for e in ends:
                if L.fits(e.fp):
                    L.add(e)
        return tab
    return None


def _room_dims(rng: np.random.Generator, room_type: str) -> tuple[float, float, float]:
    ranges = {
        "Bedroom": ((3.2, 4.3), (3.6, 4.8)),
        "MasterBedroom": ((4.0, 5.5), (4.5, 6.5)),
        "LivingRoom": ((4.2, 6.0), (5.0, 7.0)),
        "DiningRoom": ((3.8, 5.0), (4.0, 5.5)),
        "Library": ((3.0, 4.5), (3.5, 5.0)),
    }[room_type]
    a, b = draw_uniform(rng, *ranges[0]), draw_uniform(rng, *ranges[1])
    if rng.random() < 0.5:
        a, b = b, a
    return round(a, 2), round(b, 2), round(draw_uniform(rng, 2.6, 3.0), 2)


def make_room(rng: np.random.Generator, room_type: str) -> RoomLayout:
    for _ in range(50):
        lx, ly, h = _room_dims(rng, room_type)
        layout = RoomLayout(rng, lx, ly, h)
        _light_panels(layout)
        if not _room_plan(layout, room_type, rng):
            continue
        while not layout.free_ok():  # give cameras room: drop optional pieces, newest first
            opt = [i for i, it in enumerate(layout.items) if it.optional]
            if not opt:
                break
            layout.items.pop(opt[-1])
        if layout.free_ok():
            return layout
    raise RuntimeError(f"demo generator could not lay out a {room_type} (a bug: the size ranges should always fit)")


def _light_panels(L: RoomLayout) -> None:
    """One or two rectangular LightBand panels on the ceiling, off the room centre (the lamp goes there)."""
    n = 2 if L.lx * L.ly > 20 else 1
    long_x = L.lx >= L.ly
    for k in range(n):
        frac = (0.25, 0.75)[k] if n == 2 else float(L.rng.choice([0.25, 0.75]))
        pw, pd = draw_uniform(L.rng, 0.8, 1.3), draw_uniform(L.rng, 0.35, 0.6)
        if long_x:
            cx, cy, sx, sy = L.lx * frac, L.ly / 2, pd, pw
        else:
            cx, cy, sx, sy = L.lx / 2, L.ly * frac, pw, pd
        L.panels.append(np.array([cx - sx / 2, cy - sy / 2, cx + sx / 2, cy + sy / 2]))


